"""Errors that lstmkit raises for things a user can fix.

The CLI turns a ``UsageError`` into one line on stderr and exit status 2; library callers get an
ordinary ``ValueError`` subclass they can catch.
"""


class UsageError(ValueError):
    """Bad input from the user (a file, a flag, a setting): the message says what to fix."""


class BackendUnavailable(RuntimeError):
    """A backend was asked for a configuration it cannot serve; the message lists what it supports."""
