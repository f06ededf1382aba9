"""`lstmkit predict TASK --model DIR ...`: use a trained model."""
from lstmkit.commands._tasks import register_task_commands
from lstmkit.tasks import PREDICTING


def register(subparsers) -> None:
    register_task_commands(subparsers, "predict", "predict with a trained model",
                           {name: (task.PredictRecipe, task.predict_main, task.HELP)
                            for name, task in PREDICTING.items()})
