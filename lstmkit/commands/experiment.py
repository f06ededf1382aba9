"""`lstmkit experiment NAME [NAME ...]`: run one (or a few) of the demo's experiments on its own."""
from __future__ import annotations

from lstmkit.errors import UsageError
from lstmkit.experiments import (DESCRIPTIONS, EXPERIMENTS, check_names, prepare_out_dir,
                                 run_experiments, validate_settings)
from lstmkit.experiments.options import (add_common_arguments, context_from_args, default_out,
                                         parse_int_list)


def register(subparsers) -> None:
    listing = "; ".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())
    parser = subparsers.add_parser(
        "experiment", help="run one of the demo's experiments",
        description=f"Run one or more of the demo's experiments. Experiments: {listing}.")
    parser.add_argument("experiments", nargs="+", metavar="NAME", help=f"one of: {', '.join(EXPERIMENTS)}")
    add_common_arguments(parser)
    parser.add_argument("--lengths", metavar="T,T,...",
                        help="sequence lengths for adding (default 50,100,200) or copy blanks "
                             "(default 10,20,40)")
    parser.set_defaults(func=main)


def main(args) -> int:
    names = check_names(args.experiments)
    context = context_from_args(args)
    lengths = parse_int_list(args.lengths, "--lengths")
    if lengths is not None:
        tasks = [n for n in names if n in ("adding", "copy")]
        if not tasks:
            raise UsageError("--lengths applies only to the adding and copy experiments")
        context.adding_lengths = lengths if "adding" in tasks else None
        context.copy_lengths = lengths if "copy" in tasks else None
    validate_settings(names, context)
    out_dir = prepare_out_dir(args.out or default_out("-".join(names)))
    run_experiments(names, context, out_dir)
    print(f"results: {out_dir}/report.html")
    return 0
