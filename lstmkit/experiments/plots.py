"""The demo's figures (matplotlib on the Agg backend: files only, never a window)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lstmkit.training import atomic

COLORS = {"tanh RNN": "#d62728", "LSTM": "#1f77b4", "memoryless": "#444444"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> str:
    """Write atomically, so an interrupted run never leaves half a PNG."""
    atomic.write_file(path, lambda temporary: fig.savefig(temporary, dpi=110, bbox_inches="tight",
                                                          format="png"))
    _pyplot().close(fig)
    return path.name


def _color(label: str) -> str | None:
    return next((c for key, c in COLORS.items() if label.startswith(key)), None)


def line_plot(path: Path, x: Sequence[float], series: dict[str, Sequence[float]], *, xlabel: str,
              ylabel: str, title: str, hline: tuple[float, str] | None = None, logy: bool = False,
              ylim: tuple[float, float] | None = None, styles: dict[str, str] | None = None,
              logx: bool = False) -> str:
    """One line per series (label -> y values over x); an optional dashed baseline."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, y in series.items():
        ax.plot(x, y, (styles or {}).get(label, "o-"), label=label, color=_color(label),
                markersize=4)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle="--", linewidth=1, label=hline[1])
    if logy:
        ax.set_yscale("log")
    if logx:  # symlog keeps a distance of 0 on the axis
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(list(x))
        ax.set_xticklabels([str(v) for v in x])
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def gate_heatmap(path: Path, words: list[str], panels: dict[str, "object"], units: list[int],
                 title: str) -> str:
    """Panels of (units, T) arrays over the words of one story, one row per chosen unit."""
    plt = _pyplot()
    steps = len(words)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.16 * steps), 1.2 + 0.9 * len(panels)
                                                       * max(1, len(units)) / 3), sharex=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (label, values) in zip(axes, panels.items()):
        signed = label.startswith("c")  # the cell state is unbounded: scale to its largest value
        bound = max(1.0, float(abs(values).max())) if signed else 1.0
        image = ax.imshow(values, aspect="auto", interpolation="nearest",
                          cmap="RdBu_r" if signed else "viridis",
                          vmin=-bound if signed else 0, vmax=bound)
        ax.set_yticks(range(len(units)))
        ax.set_yticklabels([f"unit {u}" for u in units], fontsize=6)
        ax.set_ylabel(label, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.015, pad=0.005)
    axes[-1].set_xticks(range(steps))
    axes[-1].set_xticklabels(words, rotation=90, fontsize=6)
    axes[0].set_title(title)
    return _save(fig, path)
