"""forecast.png: the end of the test part against forecasts from origins H steps apart."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmkit.training import atomic


def plot_forecasts(path: Path, target, origins, forecast, horizon: int, title: str,
                   ylabel: str) -> Path | None:
    """Actual test series against forecasts from origins H steps apart (each covers its H steps);
    None (and a note) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is not installed (pip install 'lstmkit[tasks]')")
        return None
    first = max(0, len(origins) - 8 * horizon)  # a long test part: its last 8 horizons stay readable
    chosen = sorted(set(range(first, len(origins), horizon)) | {len(origins) - 1})  # mostly non-overlapping
    history = max(0, origins[first] - 3 * horizon)
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(np.arange(history, origins[-1] + horizon), target[history: origins[-1] + horizon],
              color="black", linewidth=1, label="actual")
    for k, i in enumerate(chosen):
        steps = origins[i] + np.arange(horizon)
        axes.plot(steps, forecast[i], color="tab:red", linewidth=1.2, label="LSTM forecast" if k == 0 else None)
    if first == 0:
        axes.axvline(origins[0], color="grey", linestyle=":", label="test part starts")
    axes.set_xlabel("time step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    atomic.write_file(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    plt.close(figure)
    return path
