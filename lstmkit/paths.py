"""Where lstmkit looks for the shared data sets (never inside the repository)."""
from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path | None:
    """The data folder: $LSTMKIT_DATA, else ../shared/data beside the project root; None if absent."""
    env = os.environ.get("LSTMKIT_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None
