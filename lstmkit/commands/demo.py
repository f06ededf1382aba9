"""`lstmkit demo`: every experiment in turn; an RNN forgets and an LSTM remembers, measured."""
from __future__ import annotations

import time

from lstmkit.experiments import EXPERIMENTS, prepare_out_dir, run_experiments, validate_settings
from lstmkit.experiments.options import add_common_arguments, context_from_args, default_out


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="see an RNN forget and an LSTM remember (about 10 minutes on 2 CPU cores)",
        description="Run every experiment (" + ", ".join(EXPERIMENTS) + ") and write metrics.json, "
                    "PNG plots and a self-contained report.html. Results are written as each "
                    "experiment finishes, so Ctrl-C keeps what was done.")
    add_common_arguments(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    context = context_from_args(args)
    validate_settings(list(EXPERIMENTS), context)
    out_dir = prepare_out_dir(args.out or default_out("demo"))
    started = time.perf_counter()
    results = run_experiments(list(EXPERIMENTS), context, out_dir)
    print("Summary:\n" + "\n".join(f"  {r.headline}" for r in results))
    print(f"demo finished in {time.perf_counter() - started:.0f} s; open {out_dir}/report.html")
    return 0
