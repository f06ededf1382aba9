"""Writes that are complete or absent, never half done: a kill at any moment leaves the old file
(or folder) or the new one. Used for checkpoints, metrics, reports and figures alike.

A file is written under a temporary name in the same folder, flushed to disk, then renamed over
the target (rename is atomic within one file system). A checkpoint folder is written completely
under NAME.tmp; the previous one moves to NAME.old, the new one to NAME, then NAME.old goes, so at
every instant NAME or NAME.old is complete (`complete_dir` finds it).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from lstmkit.errors import UsageError


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _cannot_write(path: Path, error: OSError) -> UsageError:
    """A write that failed half way (disk full, folder removed, permissions changed mid-run)."""
    return UsageError(f"cannot write {path} ({error.strerror or str(error)[:120]}); what was "
                      f"written there before is kept")


def write_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(temporary_path)`, then move the result to `path` atomically; returns `path`.
    UsageError when the disk refuses (the old file, if any, stays)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write(temporary)
        fsync_file(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise _cannot_write(path, error) from None
    finally:
        if temporary.exists():
            temporary.unlink()
    fsync_dir(path.parent)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`path` holds `text` (UTF-8), written atomically."""
    return write_file(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def replace_dir(final: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Build a new folder with `fill(folder)` and put it at `final` atomically (module docstring).
    UsageError when the disk refuses (NAME or NAME.old stays complete)."""
    try:
        return _replace_dir(Path(final), fill)
    except OSError as error:
        raise _cannot_write(Path(final), error) from None


def _replace_dir(final: Path, fill: Callable[[Path], None]) -> Path:
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    final.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():  # left over from a run killed while writing: never complete, safe to drop
        shutil.rmtree(tmp)
    tmp.mkdir()
    fill(tmp)
    fsync_dir(tmp)
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)
    return final


def complete_dir(directory: str | os.PathLike, marker: str) -> Path | None:
    """`directory`, or `directory.old` when a replacement was interrupted: the first holding
    `marker` (the file written last); None when neither does."""
    path = Path(directory)
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / marker).is_file():
            return candidate
    return None
