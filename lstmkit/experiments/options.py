"""Command-line options shared by `lstmkit demo` and `lstmkit experiment`, and their checks."""
from __future__ import annotations

import argparse
import time

import torch

from lstmkit.errors import UsageError
from lstmkit.experiments.common import RunContext


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR",
                        help="folder for metrics.json, the PNG plots and report.html "
                             "(default: runs/<command>-<date>-<time>)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data and weights (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny models and a few steps: a smoke test in seconds, not a result")
    # One thread by default: these models are small (hidden 64), so a second thread gains little,
    # and on a shared machine two threads ran 2.5-5x slower than one (measured, LSTM H=64 B=64).
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: fastest for these small models on a busy machine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    cliff = parser.add_argument_group("Cliff stories (cliff, gradients, gates)")
    cliff.add_argument("--distances", metavar="D,D,...",
                       help="distractor tokens between the pets and the probe (default 0,2,5,10,20,50,100,200)")
    cliff.add_argument("--species", type=int, help="species to draw from, 2-8 (default 6; chance = 1/species)")
    cliff.add_argument("--names", type=int, help="pet names to draw from, 2-12 (default 10)")
    cliff.add_argument("--pets", type=int, help="pets per story, mine and other people's (default 2)")


def parse_int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{flag} wants comma-separated whole numbers like 5,10,20, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} wants at least one number, got {text!r}")
    return values


def context_from_args(args: argparse.Namespace) -> RunContext:
    """Check every setting before any work starts, then configure torch."""
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    distances = parse_int_list(args.distances, "--distances")
    if distances and min(distances) < 0:
        raise UsageError(f"--distances must be >= 0 tokens, got {min(distances)}")
    torch.set_num_threads(args.threads)
    context = RunContext(seed=args.seed, quick=args.quick, show_progress=not args.no_progress)
    context.cliff_options = {"distances": distances, "species": args.species, "names": args.names,
                             "pets": args.pets}
    return context


def default_out(command: str) -> str:
    return f"runs/{command}-{time.strftime('%Y%m%d-%H%M%S')}"
