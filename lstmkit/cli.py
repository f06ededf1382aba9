"""`lstmkit <command>`: each command is a small module in lstmkit/commands with its own parser.

A command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed arguments and returning an exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from lstmkit.errors import UsageError

# Order is the order of `lstmkit --help`.
COMMANDS = ["demo", "experiment", "train", "predict", "generate", "view", "selfcheck", "bench"]


def build_parser() -> argparse.ArgumentParser:
    from lstmkit import __version__

    parser = argparse.ArgumentParser(
        prog="lstmkit",
        description="LSTMs from zero to hero: see why gates remember, then use them for real work.",
    )
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"lstmkit.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"lstmkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nlstmkit {args.command}: interrupted; finished results were kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
