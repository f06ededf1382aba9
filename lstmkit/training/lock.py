"""One process at a time in a run folder: an OS file lock on OUT/.lstmkit.lock, held for the run's life.

The lock is the kernel's (flock on POSIX, msvcrt.locking on Windows), not the file's existence: the
operating system releases it when the process ends in any way, kill -9 included, so a crashed run
never leaves a stale lock behind. The file keeps the holder's pid, command line and start time, so
a refused second process can say who holds the folder. The holder removes the file when it is done
(a killed one leaves it, unlocked and harmless); a process that locked a file just removed that way
sees that the name no longer leads to its file and tries again.

Within one process the lock is re-entrant: a command that holds OUT may call `fit` on OUT, and
nested phases (ensemble members, pretraining) pass through without deadlocking themselves.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from lstmkit.errors import UsageError

LOCK_NAME = ".lstmkit.lock"
_MAX_SHOWN = 120  # characters of the holder's command line quoted in a refusal

_held: dict[Path, tuple[int, int]] = {}  # folder -> (file descriptor, depth), this process only


def _try_lock(fd: int) -> bool:
    """True when this process now holds the lock on `fd`; False when another process does."""
    if os.name == "posix":
        import fcntl
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:  # pragma: no cover - Windows
        import msvcrt
    except ImportError:  # pragma: no cover - neither POSIX nor Windows
        raise UsageError("this platform offers no file lock; lstmkit cannot guard a run folder "
                         "against a second process here") from None
    try:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # pragma: no cover - Windows
        return False
    return True  # pragma: no cover - Windows


def _unlock(fd: int) -> None:
    if os.name == "posix":
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        import msvcrt
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _still_named(fd: int, path: Path) -> bool:
    """Whether `path` still leads to the file open as `fd` (its holder may have removed it
    between our open and our lock)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _holder(path: Path) -> str:
    """Who holds the lock at `path`, as its holder wrote it; a short phrase."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        command = " ".join(str(part) for part in info["command"])
        if len(command) > _MAX_SHOWN:
            command = command[:_MAX_SHOWN] + "..."
        return f"process {int(info['pid'])} (`{command}`, started {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):  # written a moment ago, or not by lstmkit
        return "another process"


def _record_holder(fd: int) -> None:
    info = {"pid": os.getpid(), "command": ["lstmkit", *sys.argv[1:]],
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    data = (json.dumps(info) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0) if hasattr(os, "pwrite") else os.write(fd, data)


def acquire(folder: str | os.PathLike) -> None:
    """Hold `folder` for this process (it must exist); UsageError naming the holder when another
    process holds it. Re-entrant: each acquire needs one `release`."""
    folder = Path(folder).resolve()
    if folder in _held:
        fd, depth = _held[folder]
        _held[folder] = (fd, depth + 1)
        return
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UsageError(f"cannot create the lock file {path} ({error.strerror}); "
                             f"pass --out with a writable folder") from None
        if not _try_lock(fd):
            os.close(fd)
            raise UsageError(f"{folder} is in use by {_holder(path)}; wait until it ends, "
                             f"or choose another --out")
        if _still_named(fd, path):
            break
        _unlock(fd)
        os.close(fd)
    try:
        _record_holder(fd)
    except OSError:  # the lock holds without the note; refusals then name "another process"
        pass
    _held[folder] = (fd, 1)


def release(folder: str | os.PathLike) -> None:
    folder = Path(folder).resolve()
    fd, depth = _held[folder]
    if depth > 1:
        _held[folder] = (fd, depth - 1)
        return
    del _held[folder]
    try:
        with contextlib.suppress(OSError):
            os.unlink(folder / LOCK_NAME)  # while still locked: see the module docstring
        _unlock(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def holding(folder: str | os.PathLike | None) -> Iterator[None]:
    """`folder` held for the block (nothing is held for None)."""
    if folder is None:
        yield
        return
    acquire(folder)
    try:
        yield
    finally:
        release(folder)
