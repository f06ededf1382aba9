"""`lstmkit train TASK ...`: train a model for one of the ready tasks."""
from lstmkit.commands._tasks import register_task_commands
from lstmkit.tasks import TRAIN_TASKS


def register(subparsers) -> None:
    register_task_commands(subparsers, "train", "train a model on your data", TRAIN_TASKS,
                           "add_train_args", "train_main")
