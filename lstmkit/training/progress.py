"""The one progress display: a tqdm bar on stderr when asked for and installed; otherwise (the bar
off with --no-progress, or no tqdm) a status line on stderr at least every STATUS_SECONDS, so a
long pass in a log never goes silent."""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator

STATUS_SECONDS = 60.0


def progress(iterable: Iterable, enabled: bool, description: str,
             status: Callable[[], str] | None = None) -> Iterable:
    """`iterable`, shown as a bar (with its length when it has one) when `enabled`, else with a
    status line every STATUS_SECONDS; `status()` adds to that line (a running loss, say)."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is an optional extra
            pass
        else:
            total = len(iterable) if hasattr(iterable, "__len__") else None
            return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True,
                        file=sys.stderr)
    return _with_status_lines(iterable, description, status)


def _with_status_lines(iterable: Iterable, description: str,
                       status: Callable[[], str] | None) -> Iterator:
    total = len(iterable) if hasattr(iterable, "__len__") else None
    started = last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= STATUS_SECONDS:
            last = now
            print(status_line(description, done, total, now - started,
                              status() if status is not None else ""), file=sys.stderr, flush=True)


def status_line(description: str, done: int, total: int | None, seconds: float, detail: str) -> str:
    """'epoch 2/8: 300/782 batches, 4.1 min, about 6.6 min left in this pass; loss 0.41'"""
    from lstmkit.training.budget import minutes_text

    line = f"{description}: {done}{f'/{total}' if total else ''} batches, {minutes_text(seconds)}"
    if total and done < total:
        line += f", about {minutes_text(seconds / done * (total - done))} left in this pass"
    return line + (f"; {detail}" if detail else "")
