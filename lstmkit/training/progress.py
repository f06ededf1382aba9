"""The one progress bar: tqdm on stderr when asked for and installed, otherwise the plain iterable."""
from __future__ import annotations

import sys
from typing import Iterable


def progress(iterable: Iterable, enabled: bool, description: str) -> Iterable:
    """`iterable`, shown as a bar (with its length when it has one) when `enabled`."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is an optional extra
        return iterable
    total = len(iterable) if hasattr(iterable, "__len__") else None
    return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True,
                file=sys.stderr)
