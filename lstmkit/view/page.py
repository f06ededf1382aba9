"""One self-contained HTML page: the input coloured by a unit's state or gate, hover details, the
ranked unit list, the probe box. No network: the script, the styles and the data are inline.

Every value the page shows on hover is the float32 the trace gave (exact, not quantised): each
unit's tensors are stored as float32, their bytes regrouped by significance (the sign and exponent
bytes of gate values repeat a lot) and gzip-compressed, then base64-encoded; the browser inflates
them with its built-in DecompressionStream. Where a layer's h is o * tanh(c) to float32 rounding (a
plain LSTM: no layer norm, zoneout or projection), h is left out and the script computes it, which
saves a sixth of the bytes. A page is kept under ``max_bytes``: when every unit of
every layer does not fit (long inputs, wide models), the page holds the units ranked highest by the
probe and by each score, taken in turn, and says how many of how many it shows.
"""
from __future__ import annotations

import base64
import gzip
import html
import json
import re
from importlib import resources

import numpy as np

from lstmkit.view.content import LayerTrace, RunningPrediction, ShownInput
from lstmkit.view.probe import ProbeHit
from lstmkit.view.scores import describe, ranked, unit_scores

DEFAULT_MAX_BYTES = 4_500_000  # under the 5 MB a page may weigh, with room for the script and text
ASSETS = "assets"
DERIVED_TOLERANCE = 2e-7  # a few float32 roundings of values in [-1, 1]
PLACEHOLDER = re.compile(r"/\*\{\{(\w+)\}\}\*/|\{\{(\w+)\}\}")


def pack_float32(values: np.ndarray) -> str:
    """float32 values, bytes grouped by significance, gzip, base64 (unpacked by the page's script)."""
    raw = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).reshape(-1, 4)  # (N, 4)
    regrouped = np.ascontiguousarray(raw.T).tobytes()  # all first bytes, then all second bytes, ...
    return base64.b64encode(gzip.compress(regrouped, compresslevel=6, mtime=0)).decode("ascii")


def _finite_or_none(values: np.ndarray) -> list:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _unit_order(traces: list[LayerTrace], scores: list[dict], hits: list[ProbeHit]) -> list[tuple[int, int]]:
    """(trace, unit) pairs in the order they enter the page: probe hits, then the units ranked
    first by each score of each trace in turn, then second, and so on; each pair once."""
    order = [(hit.trace, hit.unit) for hit in hits]
    rankings = [ranked(values) for trace_scores in scores for values in trace_scores.values()]
    owners = [index for index, trace_scores in enumerate(scores) for _ in trace_scores]
    for rank in range(max((t.units for t in traces), default=0)):
        order += [(owner, ranking[rank]) for owner, ranking in zip(owners, rankings) if rank < len(ranking)]
    seen, unique = set(), []
    for pair in order:
        if pair not in seen:
            seen.add(pair)
            unique.append(pair)
    return unique


def derived_tensors(trace: LayerTrace) -> list[str]:
    """The tensors the page's script recomputes rather than reads: h when it is o * tanh(c) within
    float32 rounding for every unit and step (then the page shows it to well within 1e-6)."""
    names = trace.tensors
    if not {"h", "o", "c"} <= set(names):
        return []
    computed = names["o"].astype(np.float64) * np.tanh(names["c"].astype(np.float64))
    return ["h"] if np.abs(computed - names["h"]).max() <= DERIVED_TOLERANCE else []


def _prediction_meta(prediction: RunningPrediction | None) -> dict | None:
    if prediction is None:
        return None
    meta = {"kind": prediction.kind, "labels": prediction.labels, "signal_name": prediction.signal_name,
            "width": int(prediction.values.shape[1]), "values": pack_float32(prediction.values),
            "signal": pack_float32(prediction.signal)}
    if prediction.ids is not None:
        meta["ids"] = pack_float32(prediction.ids)  # token ids, exact in float32 below 2**24
    return meta


def page_data(shown: ShownInput, traces: list[LayerTrace], prediction: RunningPrediction | None, *,
              title: str, subtitle: str = "", probe_pattern: str | None = None,
              probe_hits: list[ProbeHit] | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Everything the page's script reads, as one JSON-ready dict (see the module docstring)."""
    steps = len(shown.tokens)
    for trace in traces:
        if trace.steps != steps:
            raise ValueError(f"{trace.label} has {trace.steps} steps for an input of {steps}")
    if not traces:
        raise ValueError("nothing to show: no traced layer")
    series = shown.series
    scores = [unit_scores(trace, prediction, series) for trace in traces]
    derived = [derived_tensors(trace) for trace in traces]
    data = {
        "title": title, "subtitle": subtitle, "note": shown.note, "tokens": shown.tokens, "joiner": shown.joiner,
        "unknown": [t for t, flag in enumerate(shown.unknown or []) if flag],
        "series": _finite_or_none(series) if series is not None else None,
        "prediction": _prediction_meta(prediction),
        "probe": {"pattern": probe_pattern or "",
                  "hits": [vars(hit) for hit in probe_hits or []]},
        "traces": [{"label": trace.label, "module": trace.module, "layer": trace.layer,
                    "direction": trace.direction, "units": trace.units, "tensors": list(trace.tensors),
                    "stored": [name for name in trace.tensors if name not in gone], "derived": gone,
                    "scores": {name: _finite_or_none(values) for name, values in trace_scores.items()},
                    "score_text": {name: describe(name, trace, prediction) for name in trace_scores},
                    "data": {}}
                   for trace, trace_scores, gone in zip(traces, scores, derived)],
    }
    used = len(json.dumps(data)) + _asset_bytes()
    shown_units = 0
    for index, unit in _unit_order(traces, scores, probe_hits or []):
        trace = traces[index]
        stored = data["traces"][index]["stored"]
        packed = pack_float32(np.stack([trace.tensors[name][:, unit] for name in stored]))  # (N, T)
        cost = len(packed) + 12
        if used + cost > max_bytes and shown_units > 0:
            break
        data["traces"][index]["data"][str(unit)] = packed
        used += cost
        shown_units += 1
    data["budget"] = {"shown": shown_units, "total": sum(t.units for t in traces), "max_bytes": max_bytes}
    return data


def _asset(name: str) -> str:
    return resources.files("lstmkit.view").joinpath(ASSETS, name).read_text(encoding="utf-8")


def _asset_bytes() -> int:
    return sum(len(_asset(name).encode("utf-8")) for name in ("page.html", "viewer.css", "viewer.js"))


def render(data: dict) -> str:
    """The page for ``page_data``'s dict: the template with the styles, script and data inline."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("<", "\\u003c")  # no "</script>" can end the data block early
    values = {"TITLE": html.escape(data["title"]), "CSS": _asset("viewer.css"), "JS": _asset("viewer.js"),
              "DATA": payload}
    # One pass, so text inside the data (a user's input) is never read as a placeholder.
    return PLACEHOLDER.sub(lambda match: values[match.group(1) or match.group(2)], _asset("page.html"))


def build_page(shown: ShownInput, traces: list[LayerTrace], prediction: RunningPrediction | None = None,
               **options) -> str:
    """The page's HTML; options as for ``page_data`` (title=, subtitle=, probe_pattern=, ...)."""
    return render(page_data(shown, traces, prediction, **options))
