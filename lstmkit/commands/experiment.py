"""`lstmkit experiment NAME [NAME ...]`: run one (or a few) of the demo's experiments on its own."""
from __future__ import annotations

from lstmkit.errors import UsageError
from lstmkit.experiments import DESCRIPTIONS, check_names, run_experiments, validate_settings
from lstmkit.experiments.options import ExperimentRecipe, context_from, default_out
from lstmkit.recipe import add_flags, from_args
from lstmkit.training import lock
from lstmkit.training.run_folder import ensure_writable


def register(subparsers) -> None:
    listing = "; ".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())
    parser = subparsers.add_parser(
        "experiment", help="run one of the demo's experiments",
        description=f"Run one or more of the demo's experiments. Experiments: {listing}.")
    add_flags(parser, ExperimentRecipe)
    parser.set_defaults(func=lambda args: main(from_args(ExperimentRecipe, args)))


def main(recipe: ExperimentRecipe) -> int:
    names = check_names(list(recipe.chosen.experiments))
    context = context_from(recipe.run, recipe.stories)
    lengths = list(recipe.chosen.lengths) if recipe.chosen.lengths else None
    if lengths is not None:
        tasks = [n for n in names if n in ("adding", "copy")]
        if not tasks:
            raise UsageError("--lengths applies only to the adding and copy experiments")
        context.adding_lengths = lengths if "adding" in tasks else None
        context.copy_lengths = lengths if "copy" in tasks else None
    validate_settings(names, context)
    out_dir = ensure_writable(recipe.run.out or default_out("-".join(names)))
    with lock.holding(out_dir):  # one process writes a report folder at a time
        run_experiments(names, context, out_dir)
    print(f"results: {out_dir}/report.html")
    return 0
