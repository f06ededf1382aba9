"""The run folder (--out): held by one process, made ready for a new run, refused when it holds
one, checked writable.

A new run into a folder that holds one is refused unless --resume (continue it) or --overwrite
(remove the old run's files first), so two runs never mix their checkpoints. `claim` does every
check a command can do before reading its data: the folder writable, held by this process alone
(lstmkit.training.lock), and with --resume every checkpoint the run will read readable.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from lstmkit.errors import UsageError
from lstmkit.training import checkpoint as ckpt
from lstmkit.training import distributed, lock

RUN_FILES = ("best", "best.old", "best.tmp", "last", "last.old", "last.tmp", "metrics.jsonl",
             "recipe.json")
MEMBERS = "members"  # an ensemble's member runs (lstmkit.tasks.sentiment.ensemble)


def ensure_writable(path: str | Path, flag: str = "--out") -> Path:
    """Create the folder and prove it is writable before any work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-") as probe:
            probe.write(b"x")
            probe.flush()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"cannot write to output folder {str(path)[:200]!r} ({reason}); "
                         f"pass {flag} with a writable folder") from None
    return path


def holds_run(out: Path) -> bool:
    """Whether `out` holds a training run to continue: a complete `last` checkpoint, or members
    of an ensemble."""
    members = out / MEMBERS
    return ckpt.resolve_checkpoint_dir(out / "last") is not None or \
        (members.is_dir() and any(members.iterdir()))


def _check_resumable(out: Path, task: str) -> None:
    """Read every checkpoint --resume will read, so a damaged one is refused before the data."""
    runs = [out] + sorted(p for p in (out / MEMBERS).glob("*") if p.is_dir())
    for run in runs:
        for name in ("last", "best", "start"):
            path = ckpt.resolve_checkpoint_dir(run / name)
            if path is not None:
                ckpt.load_checkpoint(path, task=task, trainer=name == "last")


@contextlib.contextmanager
def claim(out: Path | None, task: str, resume: bool, overwrite: bool) -> Iterator[None]:
    """Hold the run folder `out` for the block, after checking what can be checked before any data
    is read: writable, no other process in it, a run there to --resume (its checkpoints readable)
    or none (unless --overwrite). Under torchrun only rank 0 holds the lock."""
    if out is None:
        yield
        return
    out = ensure_writable(out)
    main_process = distributed.from_environment().is_main
    with lock.holding(out if main_process else None):
        refuse_unless_ready(out, resume, overwrite, holds_run(out))
        if resume:
            _check_resumable(out, task)
        yield


def refuse_unless_ready(out: Path, resume: bool, overwrite: bool, occupied: bool) -> None:
    """--resume needs a run in `out` (`occupied`); a new run needs none, unless --overwrite."""
    if resume and not occupied:
        raise UsageError(f"--resume: no checkpoint at {out / 'last'} to continue from")
    if not resume and occupied and not overwrite:
        raise UsageError(f"{out} already holds a training run; pass --resume to continue it "
                         f"or --overwrite to start over")


def start_over(out: Path, old: Iterable[Path], occupied: bool, overwrite: bool,
               info: distributed.ProcessInfo) -> None:
    """Make `out` ready for a new run: refuse when it holds one (`occupied`) unless --overwrite,
    then remove the `old` paths there (folders or files; the main process, the others wait)."""
    refuse_unless_ready(out, False, overwrite, occupied)
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
        refuse_unless_ready(out, True, overwrite, has_run)
        return
    start_over(out, [out / name for name in RUN_FILES], has_run, overwrite, info)
