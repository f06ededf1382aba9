"""`lstmkit demo`: every experiment in turn; an RNN forgets and an LSTM remembers, measured."""
from __future__ import annotations

import time

from lstmkit.experiments import EXPERIMENTS, run_experiments, validate_settings
from lstmkit.experiments.options import DemoRecipe, context_from, default_out
from lstmkit.recipe import add_flags, from_args
from lstmkit.training import lock
from lstmkit.training.run_folder import ensure_writable


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="see an RNN forget and an LSTM remember (a few minutes on 2 CPU cores)",
        description="Run every experiment (" + ", ".join(EXPERIMENTS) + ") and write metrics.json, "
                    "PNG plots and a self-contained report.html. Results are written as each "
                    "experiment finishes, so Ctrl-C keeps what was done.")
    add_flags(parser, DemoRecipe)
    parser.set_defaults(func=lambda args: main(from_args(DemoRecipe, args)))


def main(recipe: DemoRecipe) -> int:
    context = context_from(recipe.run, recipe.stories)
    validate_settings(list(EXPERIMENTS), context)
    out_dir = ensure_writable(recipe.run.out or default_out("demo"))
    started = time.perf_counter()
    with lock.holding(out_dir):  # one process writes a report folder at a time
        results = run_experiments(list(EXPERIMENTS), context, out_dir)
    print("Summary:\n" + "\n".join(f"  {r.headline}" for r in results))
    print(f"demo finished in {time.perf_counter() - started:.0f} s; open {out_dir}/report.html")
    return 0
