"""`lstmkit train TASK ...`: train a model for one of the ready tasks."""
from lstmkit.commands._tasks import register_task_commands
from lstmkit.tasks import TASKS


def register(subparsers) -> None:
    register_task_commands(subparsers, "train", "train a model on your data",
                           {name: (task.TrainRecipe, task.train_main, task.HELP)
                            for name, task in TASKS.items()})
