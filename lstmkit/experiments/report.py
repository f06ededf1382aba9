"""metrics.json and one self-contained report.html (a Jinja2 template, figures embedded as base64
PNGs).

Both are rewritten after every experiment, atomically, so a run stopped half-way leaves a readable
report of what had finished.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from lstmkit.experiments.common import ExperimentResult, format_cell
from lstmkit.training import atomic


def _json_safe(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings instead of producing an invalid file."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_viewer_page(out_dir: Path, name: str, model, ids, words: list[str], labels: list[str],
                      title: str) -> str:
    """A gate-viewer page (lstmkit view) of ``model`` reading ids (1, T) = ``words``, whose output
    scores ``labels`` at every step; returns the report's link to it."""
    from lstmkit.view import build_page, classes_at_every_step

    shown, traces, prediction = classes_at_every_step(model, ids, words, labels)
    atomic.write_text(out_dir / name, build_page(shown, traces, prediction, title=title,
                                                 subtitle=f"{len(words)} words; prediction: {prediction.signal_name}"))
    return (f'<p><a href="{html.escape(name)}">Open this story in the gate viewer</a>: every gate of every unit, '
            f"word by word, and the model's prediction as it reads.</p>")


def write_metrics(out_dir: Path, run_info: dict, results: list[ExperimentResult]) -> Path:
    document = dict(run_info)
    document["experiments"] = {r.name: {"seconds": round(r.seconds, 2), "headline": r.headline, **r.metrics}
                               for r in results}
    return atomic.write_text(out_dir / "metrics.json", json.dumps(_json_safe(document), indent=2) + "\n")


def _template():
    try:
        import jinja2
    except ImportError as error:  # pragma: no cover - jinja2 comes with the demo extra
        from lstmkit.errors import UsageError
        raise UsageError("the demo's report needs Jinja2: pip install 'lstmkit[demo]'") from error
    environment = jinja2.Environment(loader=jinja2.PackageLoader("lstmkit.experiments", "templates"),
                                     autoescape=True, keep_trailing_newline=True)
    return environment.get_template("report.html.j2")


def _figures(out_dir: Path, names: list[str]) -> list[dict]:
    return [{"name": name, "data": base64.b64encode((out_dir / name).read_bytes()).decode("ascii")}
            for name in names if (out_dir / name).exists()]


def write_report(out_dir: Path, run_info: dict, results: list[ExperimentResult],
                 pending: list[str]) -> Path:
    sections = [{"title": r.title, "explanation": r.explanation, "headers": r.headers,
                 "rows": [[format_cell(v) for v in row] for row in r.rows],
                 "figures": _figures(out_dir, r.figures), "extra_html": r.extra_html,
                 "seconds": r.seconds} for r in results]
    meta = ", ".join(f"{k}: {v}" for k, v in run_info.items() if not isinstance(v, (dict, list)))
    page = _template().render(meta=meta, headlines=[r.headline for r in results if r.headline],
                              sections=sections, pending=pending)
    return atomic.write_text(out_dir / "report.html", page)
