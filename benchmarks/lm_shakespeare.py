"""Tiny Shakespeare, character level: `lstmkit train lm` under a wall-time budget (never a test).

    python benchmarks/lm_shakespeare.py [--max-minutes 30] [--threads 1] [--out runs/benchmarks/lm_shakespeare]
                                        [-- extra flags for `lstmkit train lm`]

Runs the real CLI in a subprocess, records wall and CPU time and the machine's load average (the
machines are shared: under load, wall time says little), the validation curve (nats/char against
minutes), and a 500-character sample from "ROMEO:". Writes OUT.json and OUT.md.
Target (issue 5): validation loss <= 1.55 nats/char within 30 minutes on CPU.

The other benchmarks of issue 5 import `run_measured` and `write_markdown` from here.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from lstmkit.paths import data_root

FLAGS = ["--level", "char", "--embed-size", "64", "--hidden-size", "256", "--num-layers", "2",
         "--batch-size", "64", "--bptt", "100", "--lr", "3e-3", "--chunks-per-epoch", "40",
         "--epochs", "1000", "--lr-schedule", "plateau", "--lr-step", "2"]


def run_measured(argv: list[str], log_path: Path, threads: int) -> dict:
    """Run `python -m lstmkit.cli ARGV` with THREADS intra-op threads; wall/CPU time and load average."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    load_before, usage_before = os.getloadavg(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        status = subprocess.run([sys.executable, "-m", "lstmkit.cli", *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=env).returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"status": status, "wall_minutes": round((time.perf_counter() - started) / 60, 2),
            "cpu_minutes": round((usage.ru_utime + usage.ru_stime - usage_before.ru_utime
                                  - usage_before.ru_stime) / 60, 2),
            "load_before": [round(x, 1) for x in load_before],
            "load_after": [round(x, 1) for x in os.getloadavg()], "threads": threads,
            "command": "lstmkit " + " ".join(argv), "log": str(log_path)}


def write_markdown(path: Path, title: str, header: list[str], rows: list[list], notes: list[str]) -> None:
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    path.write_text("\n".join(lines + [""] + notes) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-minutes", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/lm_shakespeare"),
                        help="work folder: run folders (checkpoints) and logs; runs/ is not versioned")
    parser.add_argument("--report-dir", type=Path, default=Path("benchmarks/results"),
                        help="where NAME.json and NAME.md go")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    root = data_root()
    if root is None:
        print("shared data not found: set LSTMKIT_DATA", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    run_dir = args.out / "run"
    argv = ["train", "lm", "--text", str(root / "tinyshakespeare" / "input.txt"), *FLAGS, *extra,
            "--max-minutes", str(args.max_minutes), "--out", str(run_dir), "--overwrite", "--no-progress",
            "--device", "cpu"]
    result = run_measured(argv, args.out / "train.log", args.threads)
    summary = json.loads((run_dir / "lm_metrics.json").read_text()) if result["status"] == 0 else {}
    sample = subprocess.run([sys.executable, "-m", "lstmkit.cli", "generate", "--model", str(run_dir),
                             "--prime", "ROMEO:", "--length", "500", "--temperature", "0.8", "--top-k", "40",
                             "--seed", "0"], capture_output=True, text=True).stdout
    best = summary.get("best_valid_loss")
    reached = next((p["minutes"] for p in summary.get("curve", []) if p["valid_loss"] <= 1.55), None)
    report = {**result, "best_valid_loss": best, "target": 1.55, "minutes_to_target": reached,
              "curve": summary.get("curve", []), "sample": sample}
    (args.report_dir / f"{args.out.name}.json").write_text(json.dumps(report, indent=1))
    rows = [[p["epoch"], p["minutes"], f"{p['train_loss']:.4f}", f"{p['valid_loss']:.4f}", f"{p['lr']:.2g}"]
            for p in report["curve"]]
    notes = [f"Best validation loss {best} nats/char (target <= 1.55; reached after {reached} min)." if best
             else f"run failed: see {result['log']}",
             f"Wall {result['wall_minutes']} min, CPU {result['cpu_minutes']} min, {args.threads} thread(s), "
             f"load average {result['load_before']} before, {result['load_after']} after.",
             f"Command: `{result['command']}`", "", "Sample (ROMEO:, temperature 0.8, top-k 40, seed 0):", "",
             "```", sample.strip(), "```"]
    write_markdown(args.report_dir / f"{args.out.name}.md", "Tiny Shakespeare, char-level LSTM",
                   ["epoch (40 chunks)", "minutes", "train loss", "valid loss", "lr"], rows, notes)
    print((args.report_dir / f"{args.out.name}.md").read_text())
    return result["status"]


if __name__ == "__main__":
    sys.exit(main())
