"""`lstmkit <command>`: each command is a small module in lstmkit/commands with its own parser.

A command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed arguments and returning an exit status.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from lstmkit.commands import (bench, demo, evaluate, experiment, export, generate, predict,
                              selfcheck, train, view)
from lstmkit.errors import UsageError

# Order is the order of `lstmkit --help`.
COMMANDS = (demo, experiment, train, evaluate, predict, generate, export, view, selfcheck, bench)


MAX_MESSAGE = 600  # characters of a refusal; what it quotes from the input is cut in the middle


def one_line(message: str) -> str:
    """`message` on one line and of readable length: a refusal quoting a huge input (a 50 MB text
    line, an endless argument) keeps its start, which names the file or flag, and its end, which
    says what to do."""
    message = " ".join(str(message).split())
    if len(message) > MAX_MESSAGE:
        cut = len(message) - MAX_MESSAGE
        message = f"{message[:MAX_MESSAGE // 2]} [... {cut:,} characters ...] " \
                  f"{message[-MAX_MESSAGE // 2:]}"
    return message


class OneLineParser(argparse.ArgumentParser):
    """Bad flags get one line naming the command and what to fix, and exit status 2."""

    def error(self, message: str):
        # argparse says "argument --x: --x must be ..." when the check names its flag itself.
        message = re.sub(r"^argument (\S+?)(?:/\S+)?: (?=\1 )", "", message)
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from lstmkit import __version__

    parser = OneLineParser(
        prog="lstmkit",
        description="LSTMs from zero to hero: see why gates remember, then use them for real work.",
    )
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as done:  # --help, --version, or a bad flag (already said in one line)
        return done.code if isinstance(done.code, int) else 0
    command = " ".join(filter(None, ("lstmkit", getattr(args, "command", None),
                                     getattr(args, "task", None))))
    if unknown:  # said by the command that was given them, not by `lstmkit`
        print(f"{command}: error: {one_line('unrecognized arguments: ' + ' '.join(unknown))} "
              f"(see --help)", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return status
    except UsageError as error:
        print(f"{command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{command}: interrupted; finished results were kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left


if __name__ == "__main__":
    sys.exit(main())
