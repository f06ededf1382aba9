"""The run folder (--out): made ready for a new run, refused when it holds one, checked writable.

A new run into a folder that holds one is refused unless --resume (continue it) or --overwrite
(remove the old run's files first), so two runs never mix their checkpoints.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from lstmkit.errors import UsageError
from lstmkit.training import distributed

RUN_FILES = ("best", "best.old", "best.tmp", "last", "last.old", "last.tmp", "metrics.jsonl",
             "recipe.json")


def ensure_writable(path: str | Path, flag: str = "--out") -> Path:
    """Create the folder and prove it is writable before any work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"cannot write to output folder {str(path)!r} ({reason}); "
                         f"pass {flag} with a writable folder") from None
    return path


def start_over(out: Path, old: Iterable[Path], occupied: bool, overwrite: bool,
               info: distributed.ProcessInfo) -> None:
    """Make `out` ready for a new run: refuse when it holds one (`occupied`) unless --overwrite,
    then remove the `old` paths there (folders or files; the main process, the others wait)."""
    if occupied and not overwrite:
        raise UsageError(f"{out} already holds a training run; pass --resume to continue it "
                         f"or --overwrite to start over")
    if info.is_main:
        for path in old:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    distributed.barrier(info)


def prepare(out: Path, resume: bool, overwrite: bool, has_run: bool,
            info: distributed.ProcessInfo) -> None:
    """Ready `out` for the run: --resume needs a run there (`has_run`); a new run needs none
    (or --overwrite, which removes it)."""
    if resume:
        if not has_run:
            raise UsageError(f"--resume: no checkpoint at {out / 'last'} to continue from")
        return
    start_over(out, [out / name for name in RUN_FILES], has_run, overwrite, info)
