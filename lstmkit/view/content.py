"""What a viewer page shows: the input's steps, every traced layer's gates, the running prediction.

These are plain arrays for one sequence (one batch row), taken from ``lstmkit.trace`` records, so
the page, the scores and the probe all read the same numbers the trace gave.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

# Per-unit tensors a record may hold, in the order the page lists them: LSTM i f g o c h,
# GRU r z n h, RNN h. The state a unit "holds" is c for an LSTM, h otherwise.
TENSOR_ORDER = ("c", "h", "i", "f", "g", "o", "r", "z", "n")


@dataclass
class ShownInput:
    """The input as the page draws it: one display string per step.

    ``joiner`` glues the strings into the text the probe's regular expression reads ("" for
    characters, " " for words or values); ``series`` holds the values to plot for a series input;
    ``unknown`` marks steps the model read as its unknown token.
    """

    tokens: list[str]
    joiner: str = ""
    series: np.ndarray | None = None  # (T,) values in the series' own units
    unknown: list[bool] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.series is not None and len(self.series) != len(self.tokens):
            raise ValueError(f"series has {len(self.series)} values for {len(self.tokens)} steps")


@dataclass
class LayerTrace:
    """One layer-direction of one traced module: name -> (T, H) float32 for one sequence."""

    module: str
    layer: int
    direction: str
    tensors: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        return f"{self.module + ' ' if self.module else ''}layer {self.layer} {self.direction}"

    @property
    def state(self) -> np.ndarray:
        """(T, H): the cell state c of an LSTM, the hidden state h of a GRU or RNN."""
        return self.tensors["c"] if "c" in self.tensors else self.tensors["h"]

    @property
    def units(self) -> int:
        return self.state.shape[1]

    @property
    def steps(self) -> int:
        return self.state.shape[0]


@dataclass
class RunningPrediction:
    """What the model predicts at each step, having read the input up to it.

    kind "next": ``ids`` (T, k) the k most likely next tokens (names in ``labels``), ``values`` (T, k) their probabilities;
    kind "classes": ``values`` (T, C) class probabilities, ``labels`` the class names;
    kind "forecast": ``values`` (T, horizon) forecasts in the series' units (NaN where none).
    ``signal`` (T,) is one number per step that the "output" score correlates cells with, and
    ``signal_name`` says what it is.
    """

    kind: str
    values: np.ndarray
    signal: np.ndarray
    signal_name: str
    labels: list[str] = field(default_factory=list)
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("next", "classes", "forecast"):
            raise ValueError(f"kind must be 'next', 'classes' or 'forecast', got {self.kind!r}")
        if len(self.values) != len(self.signal):
            raise ValueError(f"{len(self.values)} predictions for a signal of {len(self.signal)} steps")


def sequence_rows(record, row: int = 0) -> dict[str, np.ndarray]:
    """The record's tensors for batch row ``row``: name -> (T, ·) float32 numpy arrays."""
    batch_first = getattr(record.module, "batch_first", False)
    rows = {}
    for name, tensor in record.tensors.items():
        if tensor.dim() == 2:  # an unbatched call: (T, ·)
            if row != 0:
                raise ValueError(f"the traced call was unbatched; row must be 0, got {row}")
            picked = tensor
        else:
            batch = tensor.shape[0 if batch_first else 1]
            if not 0 <= row < batch:
                raise ValueError(f"row {row} is not in the traced batch of {batch}")
            picked = tensor[row] if batch_first else tensor[:, row]
        rows[name] = picked.detach().to(torch.float32).cpu().numpy()
    return rows


def layer_traces(recording, row: int = 0) -> list[LayerTrace]:
    """Every module, layer and direction of a ``lstmkit.trace`` recording, for batch row ``row``.

    Several forward calls of one module (an input fed in chunks with the state carried) are joined
    along time, in call order.
    """
    grouped: dict[tuple, list] = {}
    for record in recording.records:
        key = (id(record.module), record.module_name, record.layer, record.direction)
        grouped.setdefault(key, []).append(record)
    traces = []
    for (_, module_name, layer, direction), records in grouped.items():
        records.sort(key=lambda r: r.call)
        parts = [sequence_rows(r, row) for r in records]
        joined = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        traces.append(LayerTrace(module_name, layer, direction, unit_tensors(joined)))
    return traces


def unit_tensors(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-unit tensors in the page's order, without those sized unlike the state (h under a
    projection has no per-unit meaning next to the cell)."""
    size = (tensors["c"] if "c" in tensors else tensors["h"]).shape[1]
    return {name: tensors[name] for name in TENSOR_ORDER if name in tensors and tensors[name].shape[1] == size}


def traced(model: torch.nn.Module, call, row: int = 0):
    """Run ``call()`` in eval mode without gradients under ``lstmkit.trace(model)``: (its result,
    the layer traces of batch row ``row``). The model's training mode is restored afterwards."""
    from lstmkit.nn.trace import trace

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), trace(model) as recording:
            result = call()
    finally:
        model.train(was_training)
    return result, layer_traces(recording, row)
