"""Shared plumbing for commands that dispatch to a task module (train, predict)."""
from __future__ import annotations

import importlib


def register_task_commands(subparsers, command: str, help_text: str, tasks: dict[str, str],
                           add_args: str, main: str) -> None:
    """Add `lstmkit COMMAND TASK ...` with one sub-parser per task module that exists."""
    parser = subparsers.add_parser(command, help=help_text, description=help_text)
    task_parsers = parser.add_subparsers(dest="task", metavar="TASK")
    for name, module_name in tasks.items():
        module = importlib.import_module(module_name)
        task_parser = task_parsers.add_parser(name, help=module.HELP, description=module.HELP)
        getattr(module, add_args)(task_parser)
        task_parser.set_defaults(func=getattr(module, main))
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
