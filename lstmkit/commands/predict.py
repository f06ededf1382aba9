"""`lstmkit predict TASK --model DIR ...`: use a trained model."""
from lstmkit.commands._tasks import register_task_commands
from lstmkit.tasks import PREDICT_TASKS


def register(subparsers) -> None:
    register_task_commands(subparsers, "predict", "predict with a trained model", PREDICT_TASKS,
                           "add_predict_args", "predict_main")
