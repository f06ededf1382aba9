"""Sentiment quality of `lstmkit train sentiment` as a new user runs it: the default command
(plus any flags after --) on every set of ≥ 2,000 texts the shared data gives (sentiment_sets.py),
the model beside its fitted n-gram bag alone and the bag-of-words baseline. Never part of the tests.

    python benchmarks/sentiment.py [--sets small|all|NAME,NAME] [--seeds 0] [--imdb DIR/aclImdb]
                                   [--work DIR] [--out PREFIX] [--threads 1] [--hold-out 0.2]
                                   [-- extra flags]

With --hold-out F the test files stay unused: a seeded share F of each training file is scored
instead, which is how the defaults were chosen (results/sentiment-choice.md).

Each run is the real CLI in a subprocess (task_runs.measure: wall and CPU time, the load average
before and after: the machines are shared). Its report.json gives the test accuracy and F1 of the
model, of its bag alone and of the baseline fitted on the same training texts, and the validation
accuracy (what choices were made on). Writes PREFIX.json and PREFIX.md (default
benchmarks/results/sentiment-defaults).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sentiment_sets import SETS, SMALL, build, hold_out  # noqa: E402
from task_runs import measure, processor  # noqa: E402

from lstmkit.paths import data_root  # noqa: E402


def run_one(name: str, seed: int, root: Path, args, extra: list[str]) -> dict:
    data = build(name, root, args.work, args.imdb)
    if args.hold_out:
        data = hold_out(data, args.hold_out, args.work)
    run_dir = args.work / "runs" / f"{name}-seed{seed}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    argv = ["train", "sentiment", *data, *extra, "--seed", str(seed), "--out", str(run_dir),
            "--overwrite", "--no-progress", "--device", "cpu"]
    m = measure(argv, args.work / "runs" / f"{name}-seed{seed}.log", args.threads)
    result = {"set": name, "seed": seed, "command": "lstmkit " + " ".join(argv), "status": m["status"],
              "wall_seconds": round(m["wall_seconds"], 1), "cpu_seconds": round(m["cpu_seconds"], 1),
              "load_before": [round(x, 1) for x in m["load_before"]],
              "load_after": [round(x, 1) for x in m["load_after"]]}
    report = run_dir / "report.json"
    if m["status"] == 0 and report.is_file():
        result["report"] = json.loads(report.read_text())
    return result


def _cell(report: dict, part: str, key: str = "accuracy") -> str:
    value = report.get(part, {}).get(key)
    return "-" if value is None else f"{100 * value:.2f}"


def markdown(results: list[dict], machine: dict, extra: list[str]) -> str:
    lines = ["# Sentiment: the default command on every set", "",
             f"Machine: {machine['cpus']} CPUs ({machine['processor']}), torch {machine['torch']}, "
             f"{machine['threads']} thread(s) per run; the load average (1 min) before/after each "
             "run shows how shared the machine was.",
             f"Flags added to the default command: `{' '.join(extra) or 'none'}`.", "",
             "| set | seed | train / valid / test | model test acc | its bag alone | baseline | "
             "model valid acc | best epoch | train s | wall s | load | beats baseline |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rep = r.get("report", {})
        sizes = (f"{rep.get('train_examples', '-')} / {rep.get('valid_examples', '-')} / "
                 f"{rep.get('test', {}).get('n', '-')}")
        beats = ("yes" if rep["test"]["accuracy"] > rep["baseline"]["accuracy"] else "no") \
            if "baseline" in rep and "test" in rep else "-"
        lines.append(f"| {r['set']} | {r['seed']} | {sizes} | {_cell(rep, 'test')} | "
                     f"{_cell(rep, 'bag')} | {_cell(rep, 'baseline')} | "
                     f"{_cell(rep, 'valid', 'acc')} | {rep.get('best_epoch', '-')} | "
                     f"{rep.get('train_seconds', '-')} | {r['wall_seconds']} | "
                     f"{r['load_before'][0]}/{r['load_after'][0]} | {beats} |")
    done = [r["report"] for r in results if "report" in r and "baseline" in r["report"]]
    if done:
        gain = [100 * (d["test"]["accuracy"] - d["baseline"]["accuracy"]) for d in done]
        valid = [100 * d["valid"]["acc"] for d in done]
        lines += ["", f"Mean over the runs: test accuracy {statistics.mean(gain):+.2f} points "
                      f"against the baseline (min {min(gain):+.2f}); mean validation accuracy "
                      f"{statistics.mean(valid):.2f}."]
    lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in results]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="small", help="small, all, or names joined by commas")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--imdb", type=Path, default=None, help="the unpacked aclImdb folder")
    parser.add_argument("--work", type=Path, default=Path("runs/benchmarks/sentiment"),
                        help="where the sets and run folders go (runs/ is not versioned)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sentiment-defaults"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hold-out", type=float, default=0.0,
                        help="choose recipes without the test set: score a seeded share of each "
                             "training file instead (the real test file unused)")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    names = {"small": list(SMALL), "all": list(SETS)}.get(args.sets, args.sets.split(","))
    root = data_root()
    if root is None:
        print("shared data not found: set LSTMKIT_DATA or place it at ../shared/data", file=sys.stderr)
        return 2
    machine = {"cpus": os.cpu_count(), "processor": processor(),
               "torch": torch.__version__, "threads": args.threads, "platform": platform.platform()}
    results = []
    for name in names:
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_one(name, seed, root, args, extra))
            print(json.dumps({k: results[-1].get(k) for k in ("set", "seed", "status", "wall_seconds")}),
                  file=sys.stderr, flush=True)
            # Written after every run, so a long session keeps what it finished.
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix(".json").write_text(json.dumps(
                {"machine": machine, "extra_flags": extra, "runs": results}, indent=1) + "\n")
            args.out.with_suffix(".md").write_text(markdown(results, machine, extra))
    print(markdown(results, machine, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
