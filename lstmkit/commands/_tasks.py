"""Shared plumbing for commands with one sub-command per task (train, predict): the task's recipe
becomes the sub-command's flags, and the parsed flags its recipe again."""
from __future__ import annotations

from typing import Callable

from lstmkit.recipe import add_flags, from_args


def register_task_commands(subparsers, command: str, help_text: str,
                           tasks: dict[str, tuple[type, Callable, str]]) -> None:
    """Add `lstmkit COMMAND TASK ...`; tasks maps a name to (recipe class, run(recipe), help)."""
    parser = subparsers.add_parser(command, help=help_text, description=help_text)
    task_parsers = parser.add_subparsers(dest="task", metavar="TASK")
    for name, (recipe_cls, run, task_help) in tasks.items():
        task_parser = task_parsers.add_parser(name, help=task_help, description=task_help)
        add_flags(task_parser, recipe_cls)
        task_parser.set_defaults(func=lambda args, cls=recipe_cls, run=run: run(from_args(cls, args)))
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
