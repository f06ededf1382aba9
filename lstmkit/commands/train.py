"""`lstmkit train TASK ...`: train a model for one of the ready tasks."""
from lstmkit.commands._tasks import register_task_commands
from lstmkit.tasks import TASKS
from lstmkit.training.run_folder import claim


def _in_run_folder(task):
    """The task's training, holding its run folder (--out) from before the data is read until the
    report is written: pretraining phases, ensemble members and the final scoring included."""
    def run(recipe) -> int:
        config = recipe.training
        if hasattr(task, "check_recipe"):
            task.check_recipe(recipe)
        with claim(config.out, task.NAME, config.resume, config.overwrite):
            return task.train_main(recipe)
    return run


def register(subparsers) -> None:
    register_task_commands(subparsers, "train", "train a model on your data",
                           {name: (task.TrainRecipe, _in_run_folder(task), task.HELP)
                            for name, task in TASKS.items()})
