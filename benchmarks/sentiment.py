"""Quality runs of `lstmkit train sentiment` on the shared data sets (never part of the tests).

    python benchmarks/sentiment.py [--only amazon|sst2] [--out PREFIX]
                                   [--threads 1] [-- extra flags for every run]

PREFIX defaults to benchmarks/results/sentiment-NAMES (e.g. sentiment-amazon), so a run of one
data set never overwrites the report of another.

Each run is a subprocess of the real CLI (`python -m lstmkit.cli train sentiment ...`), run by
`measure` from task_runs.py (the harness shared with the other task benchmarks): this script
records its wall time and CPU time, the machine's load average before and after (the machines
are shared: a loaded machine makes wall time meaningless, CPU time less so), and collects
the run's report.json (test accuracy / F1 of the LSTM and of the bag-of-words baseline fitted on
the same training split). Writes OUT.json and OUT.md.

Targets: Amazon reviews test accuracy >= 85 % and above the baseline, trained on CPU in
under 15 minutes; SST-2 test accuracy >= 84 %.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_runs import measure  # noqa: E402

from lstmkit.paths import data_root  # noqa: E402

# The settings we recommend per data set (chosen on the validation split, see docs/training.md).
RUNS = {
    "amazon": {
        "data": ["--train", "amazon_reviews/train.ft.txt.bz2", "--test", "amazon_reviews/test.ft.txt.bz2",
                 "--pretrain-on", "sst2/train.tsv"],
        # Transfer from SST-2's labelled movie-review phrases, then three fine-tunings (an
        # ensemble) with a cosine decay, beside a weight-decayed n-gram bag: the configuration with
        # the best mean validation accuracy over the splits of seeds 0-2 (every configuration,
        # seed and its test score: results/sentiment-amazon.md).
        "flags": ["--embedding-dim", "100", "--hidden-size", "128", "--max-len", "300",
                  "--epochs", "4", "--lr-schedule", "cosine", "--batch-size", "32", "--pooling", "max",
                  "--pretrain-label-map", "0=1,1=2", "--pretrain-on-epochs", "3",
                  "--pretrain-on-batch-size", "64",
                  "--ngram-buckets", "1048576", "--ngram-weight-decay", "1.0", "--ensemble", "3"],
        "targets": {"accuracy": 0.85, "above_baseline": True, "minutes": 15},
    },
    "sst2": {
        "data": ["--train", "sst2/train.tsv", "--valid", "sst2/dev.tsv", "--test", "sst2/test.tsv"],
        # Three fine-tunings with an n-gram bag: the best dev accuracy of the configurations tried
        # (results/sentiment-sst2.md).
        "flags": ["--embedding-dim", "100", "--hidden-size", "128", "--epochs", "4",
                  "--batch-size", "64", "--pooling", "max", "--ensemble", "3",
                  "--ngram-buckets", "1048576", "--ngram-weight-decay", "1.0"],
        "targets": {"accuracy": 0.84},
    },
}


def run_one(name: str, spec: dict, root: Path, out_dir: Path, threads: int, extra: list[str]) -> dict:
    data = [str(root / a) if i % 2 else a for i, a in enumerate(spec["data"])]
    run_dir = out_dir / f"run-{name}"
    argv = ["train", "sentiment", *data, *spec["flags"], *extra,
            "--out", str(run_dir), "--overwrite", "--no-progress", "--device", "cpu"]
    log_path = out_dir / f"{name}.log"
    m = measure(argv, log_path, threads, unbuffered=False)
    status = m["status"]
    result = {"name": name, "command": " ".join(["-m", "lstmkit.cli", *argv]), "status": status,
              "wall_seconds": round(m["wall_seconds"], 1), "cpu_seconds": round(m["cpu_seconds"], 1),
              "load_average_before": m["load_before"], "load_average_after": m["load_after"],
              "log": str(log_path), "targets": spec["targets"]}
    report_file = run_dir / "report.json"
    if status == 0 and report_file.is_file():
        result["report"] = json.loads(report_file.read_text())
    return result


def verdict(result: dict) -> str:
    report, targets = result.get("report"), result["targets"]
    if not report or "test" not in report:
        return "failed"
    ok = report["test"]["accuracy"] >= targets["accuracy"]
    if targets.get("above_baseline") and "baseline" in report:
        ok &= report["test"]["accuracy"] > report["baseline"]["accuracy"]
    if "minutes" in targets:
        ok &= report["train_seconds"] < 60 * targets["minutes"]
    return "met" if ok else "missed"


def markdown(results: list[dict], machine: dict) -> str:
    lines = ["# Sentiment quality runs", "",
             f"Machine: {machine['cpus']} CPUs, torch {machine['torch']}, threads {machine['threads']}. "
             "Load averages show how shared the machine was.", "",
             "| data | test acc | test F1 | baseline acc | baseline F1 | best epoch | train s | "
             "run wall s | run CPU s | load before/after | targets |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rep = r.get("report") or {}
        test, base = rep.get("test", {}), rep.get("baseline", {})
        fmt = lambda d, k: f"{d[k]:.4f}" if k in d else "-"  # noqa: E731
        lines.append(f"| {r['name']} | {fmt(test, 'accuracy')} | {fmt(test, 'f1')} | "
                     f"{fmt(base, 'accuracy')} | {fmt(base, 'f1')} | {rep.get('best_epoch', '-')} | "
                     f"{rep.get('train_seconds', '-')} | {r['wall_seconds']} | {r['cpu_seconds']} | "
                     f"{r['load_average_before'][0]:.1f}/{r['load_average_after'][0]:.1f} | "
                     f"{verdict(r)} |")
    lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in results]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS), action="append")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="flags added to every run (after --)")
    args = parser.parse_args()
    if args.out is None:
        args.out = Path("benchmarks/results/sentiment-" + "-".join(sorted(set(args.only or RUNS))))
    root = data_root()
    if root is None:
        print("shared data not found: set LSTMKIT_DATA or place it at ../shared/data", file=sys.stderr)
        return 2
    out_dir = args.out.parent / (args.out.name + "-runs")
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
               "platform": platform.platform(), "python": platform.python_version()}
    results = []
    for name in args.only or list(RUNS):
        results.append(run_one(name, RUNS[name], root, out_dir, args.threads, args.extra))
        print(json.dumps({k: results[-1].get(k) for k in ("name", "status", "wall_seconds")}),
              file=sys.stderr)
        # Written after every run, so a long session keeps what it finished.
        args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "runs": results},
                                                            indent=1) + "\n")
        args.out.with_suffix(".md").write_text(markdown(results, machine))
    print(markdown(results, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
