"""Scores that rank a layer's units, so the interesting ones are found without scrolling through all.

Each score is one number per unit over the steps of the input shown:
- output: how strongly the unit's state tracks the model's output (|Pearson correlation| with the
  running prediction's signal: P(class), the next-token entropy, the 1-step forecast);
- memory: how long the unit holds a value, 1 / (1 - mean keep gate) steps (the forget gate f of an
  LSTM, the update gate z of a GRU, whose z = 1 keeps the old state);
- selective: how selectively the input gate opens: the share of its total opening that falls in
  its 5 % most open steps (0.05 for a gate open alike everywhere, 1 for one open only there);
- active: the standard deviation of the unit's state (a unit that never moves tells nothing);
- input: for a series, |correlation| of the state with the series' value.
"""
from __future__ import annotations

import math

import numpy as np

from lstmkit.view.content import LayerTrace, RunningPrediction

DESCRIPTIONS = {
    "output": "|correlation| of the unit's state with the model's output ({signal})",
    "memory": "steps the unit holds a value: 1 / (1 - mean {gate})",
    "selective": "share of the input gate's opening in its 5 % most open steps",
    "active": "standard deviation of the unit's state over the input",
    "input": "|correlation| of the unit's state with the series' value",
}
KEEP_GATES = {"f": "forget gate f", "z": "update gate z"}
MEMORY_CAP = 1e4  # a gate that never leaks holds "forever"; a finite cap keeps the page's JSON valid


def correlations(state: np.ndarray, feature: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of each column of state (T, H) with feature (T,) over the steps in mask.

    NaN for a unit (or a feature) that does not vary over those steps.
    """
    x = state.astype(np.float64)
    y = feature.astype(np.float64)
    if mask is not None:
        x, y = x[mask], y[mask]
    if len(y) < 2:
        return np.full(state.shape[1], np.nan)
    x = x - x.mean(axis=0)
    y = y - y.mean()
    denominator = np.sqrt((x * x).sum(axis=0) * (y * y).sum())  # (H,)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (x * y[:, None]).sum(axis=0) / denominator
    return np.where(denominator > 0, result, np.nan)


def memory_steps(keep: np.ndarray) -> np.ndarray:
    """keep (T, H) gate values -> (H,) steps a value survives: 1 / (1 - mean keep), capped."""
    leak = 1.0 - keep.astype(np.float64).mean(axis=0)
    with np.errstate(divide="ignore"):
        return np.minimum(np.where(leak > 0, 1.0 / leak, MEMORY_CAP), MEMORY_CAP)


def selectivity(gate: np.ndarray) -> np.ndarray:
    """gate (T, H) in [0, 1] -> (H,) share of each unit's total opening in its top 5 % steps."""
    steps = gate.shape[0]
    top = max(1, math.ceil(0.05 * steps))
    values = gate.astype(np.float64)
    largest = np.sort(values, axis=0)[steps - top:].sum(axis=0)  # (H,)
    total = values.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, largest / total, np.nan)


def unit_scores(trace: LayerTrace, prediction: RunningPrediction | None = None,
                series: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """name -> (H,) scores of every unit of one layer-direction (only those that apply)."""
    state = trace.state
    scores: dict[str, np.ndarray] = {}
    if prediction is not None and np.isfinite(prediction.signal).sum() >= 2:
        finite = np.isfinite(prediction.signal)
        scores["output"] = np.abs(correlations(state, prediction.signal, finite))
    keep = next((name for name in KEEP_GATES if name in trace.tensors), None)
    if keep is not None:
        scores["memory"] = memory_steps(trace.tensors[keep])
    if "i" in trace.tensors:
        scores["selective"] = selectivity(trace.tensors["i"])
    scores["active"] = state.astype(np.float64).std(axis=0)
    if series is not None:
        scores["input"] = np.abs(correlations(state, series, np.isfinite(series)))
    return scores


def describe(name: str, trace: LayerTrace, prediction: RunningPrediction | None) -> str:
    """What score ``name`` measures, in words, for this layer and prediction."""
    gate = next((KEEP_GATES[g] for g in KEEP_GATES if g in trace.tensors), "keep gate")
    signal = prediction.signal_name if prediction is not None else "no prediction"
    return DESCRIPTIONS[name].format(gate=gate, signal=signal)


def ranked(scores: np.ndarray) -> list[int]:
    """Unit indices from the highest score to the lowest; NaN scores last."""
    keyed = np.where(np.isfinite(scores), scores, -np.inf)
    return [int(u) for u in np.argsort(-keyed, kind="stable")]
