"""Probe: which units' cells follow a feature of the text that a regular expression describes?

This is how Karpathy, Johnson & Fei-Fei (2015) found the quote cell and the line-length cell. The
matches of the expression in the shown text (the steps' strings joined) give three features per
step; each unit's state is correlated with each of them:
- inside: 1 on the steps inside a match, 0 elsewhere (e.g. ``"[^"]*"`` inside quotes);
- position: on the steps inside a match, how many steps since the match began (e.g. ``[^\\n]*\\n``:
  the position in the line);
- remaining: on the steps inside a match, how many steps are left to its end (the distance to the
  line end).
A step belongs to a match when its string starts inside it. The page's probe box runs the same
computation in JavaScript (its regular expressions are JavaScript's, the same for simple patterns).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lstmkit.view.content import LayerTrace
from lstmkit.view.scores import correlations

FEATURES = ("inside", "position", "remaining")
MIN_STEPS = 3  # a correlation over fewer steps says nothing


@dataclass
class ProbeHit:
    """A unit whose state correlates with a feature: ``correlation`` is signed, over ``steps`` steps."""

    trace: int          # index into the list of traces probed
    label: str          # the trace's layer and direction, in words
    unit: int
    feature: str
    correlation: float
    steps: int


def step_offsets(tokens: list[str], joiner: str) -> np.ndarray:
    """(T,) where each step's string starts in ``joiner.join(tokens)``."""
    lengths = np.array([len(t) + len(joiner) for t in tokens], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(tokens) else lengths


def compile_probe(pattern: str) -> re.Pattern:
    """The compiled expression; ValueError saying why it does not compile."""
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"probe {pattern!r} is not a valid regular expression ({error})") from None


def regex_features(tokens: list[str], joiner: str, pattern: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """feature name -> (values (T,), mask (T,) of the steps it is defined on).

    Raises ValueError for an expression that does not compile or matches no step.
    """
    expression = compile_probe(pattern)
    offsets = step_offsets(tokens, joiner)
    steps = len(tokens)
    inside = np.zeros(steps)
    position = np.zeros(steps)
    remaining = np.zeros(steps)
    matched = 0
    for match in expression.finditer(joiner.join(tokens)):
        first, last = np.searchsorted(offsets, [match.start(), match.end()])  # steps [first, last)
        if last <= first:
            continue  # empty, or inside one step's string without starting a step
        matched += 1
        inside[first:last] = 1
        position[first:last] = np.arange(last - first)
        remaining[first:last] = np.arange(last - first)[::-1]
    if not matched:
        raise ValueError(f"probe {pattern!r} matches no step of the input")
    every = np.ones(steps, dtype=bool)
    within = inside.astype(bool)
    return {"inside": (inside, every), "position": (position, within), "remaining": (remaining, within)}


def probe(traces: list[LayerTrace], tokens: list[str], joiner: str, pattern: str,
          top: int = 10) -> list[ProbeHit]:
    """The ``top`` units (over all traces and features) by |correlation| with the pattern's features."""
    hits = []
    for name, (values, mask) in regex_features(tokens, joiner, pattern).items():
        if mask.sum() < MIN_STEPS or np.ptp(values[mask]) == 0:
            continue  # the feature is constant where defined: nothing to correlate with
        for index, trace in enumerate(traces):
            corr = correlations(trace.state, values, mask)
            for unit in np.flatnonzero(np.isfinite(corr)):
                hits.append(ProbeHit(index, trace.label, int(unit), name, float(corr[unit]), int(mask.sum())))
    hits.sort(key=lambda hit: -abs(hit.correlation))
    return hits[:top]
