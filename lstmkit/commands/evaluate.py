"""`lstmkit evaluate --model DIR --test FILE`: the metrics and baselines of a finished or
interrupted training run, as its training report has them (lstmkit.tasks.evaluation)."""
from lstmkit.recipe import add_flags, from_args
from lstmkit.tasks import TASKS
from lstmkit.tasks.evaluation import EvaluateRecipe, model_task


def _run(recipe: EvaluateRecipe) -> int:
    return TASKS[model_task(recipe.evaluate.model)].evaluate_main(recipe)


def register(subparsers) -> None:
    help_text = "score a trained (or interrupted) run on test data, beside its baselines"
    parser = subparsers.add_parser("evaluate", help=help_text, description=help_text)
    add_flags(parser, EvaluateRecipe)
    parser.set_defaults(func=lambda args: _run(from_args(EvaluateRecipe, args)))
