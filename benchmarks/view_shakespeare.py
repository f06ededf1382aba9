"""`lstmkit view` on the Tiny Shakespeare char model: probe results, page size and load time (never a test).

    python benchmarks/view_shakespeare.py --model RUN [--chars 20000] [--out runs/benchmarks/view_shakespeare]
                                          [--screenshots docs/images]

RUN is a run folder of the task's recommended run (benchmarks/lm_shakespeare.py). The text viewed is
held out from training: the last tenth of input.txt (the part `train lm` validates on), its first
--chars characters (sample A) and the next --chars (sample B). For each probe below, the two units
that correlate best on A, and the same units' correlations on B (does the cell follow the feature
beyond the text it was picked on?). Then the page of A with the first probe: its size, the units
it holds, the time until it is ready in headless Chromium (median of 3 loads), and screenshots
with the mouse on a step inside a match. Writes OUT/view_shakespeare.{json,md} in --report-dir.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from lstmkit.paths import data_root
from lstmkit.view import load, page_data, probe, render
from lstmkit.view.browser import console_errors, headless_chromium, hover, open_page, why_not
from lstmkit.view.probe import regex_features
from lstmkit.view.scores import correlations

PROBES = {
    "position in a speaker's name line (ROMEO:)": r"[A-Z][A-Za-z ]*:\n",
    "position in the line": r"[^\n]*\n",
    "position in a speech (lines up to a blank line)": r"(?:[^\n]*\n)+?\n",
}


def best_hits(task, sample: str, pattern: str, other: str, top: int = 2) -> list[dict]:
    """The `top` units on `sample` and their correlations (same feature) on `other`."""
    shown, traces, _ = task.view(sample)
    other_shown, other_traces, _ = task.view(other)
    features = regex_features(other_shown.tokens, other_shown.joiner, pattern)
    found = []
    for hit in probe(traces, shown.tokens, shown.joiner, pattern, top=top):
        values, mask = features[hit.feature]
        again = float(correlations(other_traces[hit.trace].state[:, [hit.unit]], values, mask)[0])
        found.append({"pattern": pattern, "layer": hit.label, "unit": hit.unit, "feature": hit.feature,
                      "r_sample_a": round(hit.correlation, 3), "r_sample_b": round(again, 3), "steps_a": hit.steps})
    return found


def page_run(task, sample: str, pattern: str, out: Path, screenshot: Path | None) -> dict:
    started = time.perf_counter()
    shown, traces, prediction = task.view(sample)
    hits = probe(traces, shown.tokens, shown.joiner, pattern)
    data = page_data(shown, traces, prediction, title="lstmkit view: Tiny Shakespeare, char LSTM 2x256",
                     subtitle=f"{len(shown.tokens):,} held-out characters; probe {pattern!r}",
                     probe_pattern=pattern, probe_hits=hits)
    page = render(data)
    build_seconds = time.perf_counter() - started
    out.write_text(page, encoding="utf-8")
    result = {"page": str(out), "megabytes": round(len(page.encode()) / 1e6, 3), "build_seconds": round(build_seconds, 1),
              "units_shown": data["budget"]["shown"], "units_total": data["budget"]["total"]}
    if why_not():
        result["load_ms"] = f"not measured: {why_not()}"
        return result
    with headless_chromium() as driver:
        loads = [open_page(driver, out) for _ in range(3)]
        result["load_ms"] = [round(ms) for ms in loads]
        result["load_ms_median"] = round(statistics.median(loads))
        result["console_errors"] = console_errors(driver)
        inside, _ = regex_features(shown.tokens, shown.joiner, pattern)["inside"]
        step = int(inside[200:].argmax()) + 203  # a few characters into a match past the first lines
        hover(driver, step)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(screenshot))
            result["screenshot"] = str(screenshot)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder of the Tiny Shakespeare char model")
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/view_shakespeare"))
    parser.add_argument("--report-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for the docs' screenshots")
    args = parser.parse_args()
    root = data_root()
    if root is None:
        print("shared data not found: set LSTMKIT_DATA", file=sys.stderr)
        return 2
    text = (root / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    held_out = text[int(len(text) * 0.9):]
    sample_a, sample_b = held_out[:args.chars], held_out[args.chars:2 * args.chars]
    args.out.mkdir(parents=True, exist_ok=True)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    task = load(args.model)
    report = {"model": str(args.model), "chars": args.chars, "threads": os.environ.get("OMP_NUM_THREADS"),
              "load_average": [round(x, 1) for x in os.getloadavg()],
              "probes": {name: best_hits(task, sample_a, pattern, sample_b) for name, pattern in PROBES.items()}}
    report["pages"] = {}
    for k, (name, pattern) in enumerate(list(PROBES.items())[:2]):
        shot = args.screenshots / f"view-shakespeare-{k + 1}.png" if args.screenshots else None
        report["pages"][name] = page_run(task, sample_a, pattern, args.out / f"page-{k + 1}.html", shot)
    (args.report_dir / "view_shakespeare.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# `lstmkit view` on the Tiny Shakespeare char model", "",
             f"Model: `{args.model}`; {args.chars:,} held-out characters per sample. "
             f"Load average at the start: {report['load_average']}.", "",
             "| feature | regex | best units (sample A) | r on A | same unit, r on B |", "|---|---|---|---|---|"]
    for name, hits in report["probes"].items():
        for rank, hit in enumerate(hits):
            lines.append(f"| {name if rank == 0 else ''} | {'`' + repr(hit['pattern']) + '`' if rank == 0 else ''} | "
                         f"{hit['layer']}, unit {hit['unit']} ({hit['feature']}) | "
                         f"{hit['r_sample_a']:+.3f} | {hit['r_sample_b']:+.3f} |")
    lines += ["", "| page | MB | units in the page | built in | ready in headless Chromium (3 loads) |",
              "|---|---|---|---|---|"]
    for name, page in report["pages"].items():
        lines.append(f"| {name} | {page['megabytes']} | {page['units_shown']} of {page['units_total']} | "
                     f"{page['build_seconds']} s | {page.get('load_ms')} ms |")
    (args.report_dir / "view_shakespeare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
