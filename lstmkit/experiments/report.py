"""metrics.json and one self-contained report.html (figures embedded as base64 PNGs).

Both are rewritten after every experiment, atomically (temp file, then rename), so a run stopped
half-way leaves a readable report of what had finished.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from lstmkit.experiments.common import ExperimentResult, format_cell

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: right; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; }
p.gates { line-height: 2.0; font-family: ui-monospace, monospace; font-size: 0.85em; }
p.gates span { padding: 1px 2px; border-radius: 3px; }
.meta { color: #666; font-size: 0.85em; }
"""

INTRO = ("A tanh RNN and an LSTM of the same size, trained on the same data, side by side: where does "
         "each one stop remembering, and what do the LSTM's gates do to remember?")


def _json_safe(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings instead of producing an invalid file."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_viewer_page(out_dir: Path, name: str, model, ids, words: list[str], labels: list[str],
                      title: str) -> str:
    """A gate-viewer page (lstmkit view) of ``model`` reading ids (1, T) = ``words``, whose output
    scores ``labels`` at every step; returns the report's link to it."""
    from lstmkit.view import build_page, classes_at_every_step

    shown, traces, prediction = classes_at_every_step(model, ids, words, labels)
    _write_atomically(out_dir / name, build_page(shown, traces, prediction, title=title,
                                                 subtitle=f"{len(words)} words; prediction: {prediction.signal_name}"))
    return (f'<p><a href="{html.escape(name)}">Open this story in the gate viewer</a>: every gate of every unit, '
            f"word by word, and the model's prediction as it reads.</p>")


def write_metrics(out_dir: Path, run_info: dict, results: list[ExperimentResult]) -> Path:
    document = dict(run_info)
    document["experiments"] = {r.name: {"seconds": round(r.seconds, 2), "headline": r.headline, **r.metrics}
                               for r in results}
    path = out_dir / "metrics.json"
    _write_atomically(path, json.dumps(_json_safe(document), indent=2) + "\n")
    return path


def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(format_cell(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure_html(out_dir: Path, name: str) -> str:
    path = out_dir / name
    if not path.exists():
        return ""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}"></p>'


def write_report(out_dir: Path, run_info: dict, results: list[ExperimentResult],
                 pending: list[str]) -> Path:
    sections = []
    for result in results:
        sections.append(
            f"<h2>{html.escape(result.title)}</h2>"
            f"<p>{html.escape(result.explanation)}</p>"
            + _table_html(result.headers, result.rows)
            + "".join(_figure_html(out_dir, f) for f in result.figures)
            + result.extra_html
            + f'<p class="meta">{result.seconds:.1f} s</p>')
    summary = "".join(f"<li>{html.escape(r.headline)}</li>" for r in results if r.headline)
    if summary:
        sections.insert(0, f"<h2>Summary</h2><ul>{summary}</ul>")
    if pending:
        sections.append(f"<h2>Not run (yet)</h2><p>{html.escape(', '.join(pending))}</p>")
    meta = ", ".join(f"{k}: {v}" for k, v in run_info.items() if not isinstance(v, (dict, list)))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lstmkit demo</title>"
            f"<style>{STYLE}</style></head><body><h1>lstmkit demo: an RNN forgets, an LSTM remembers</h1>"
            f"<p>{html.escape(INTRO)}</p><p class='meta'>{html.escape(meta)}</p>"
            + "".join(sections) + "</body></html>\n")
    path = out_dir / "report.html"
    _write_atomically(path, page)
    return path
