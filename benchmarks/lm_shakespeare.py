"""Tiny Shakespeare, character level: `lstmkit train lm` under a wall-time budget (never a test).

    python benchmarks/lm_shakespeare.py [--max-minutes 30] [--threads 1] [--out runs/benchmarks/lm_shakespeare]
                                        [-- extra flags for `lstmkit train lm`]

Runs the real CLI in a subprocess, records wall and CPU time and the machine's load average (the
machines are shared: under load, wall time says little), the validation curve (nats/char against
minutes), and a 500-character sample from "ROMEO:". Writes OUT.json and OUT.md.
Target: validation loss <= 1.55 nats/char within 30 minutes on CPU.

The harness (measured subprocess, command line, markdown table) is task_runs.py, shared with the
other task benchmarks.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_runs import parse_task_args, run_measured, run_notes, task_parser, write_markdown  # noqa: E402

FLAGS = ["--level", "char", "--embedding-dim", "64", "--hidden-size", "256", "--num-layers", "2",
         "--batch-size", "64", "--bptt", "100", "--lr", "3e-3", "--chunks-per-epoch", "40",
         "--epochs", "1000", "--lr-schedule", "plateau", "--lr-step", "2"]


def main() -> int:
    parser = task_parser(__doc__.splitlines()[0], "lm_shakespeare")
    parser.add_argument("--max-minutes", type=float, default=30.0)
    args, extra, root = parse_task_args(parser)
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
             *run_notes(result), "", "Sample (ROMEO:, temperature 0.8, top-k 40, seed 0):", "",
             "```", sample.strip(), "```"]
    write_markdown(args.report_dir / f"{args.out.name}.md", "Tiny Shakespeare, char-level LSTM",
                   ["epoch (40 chunks)", "minutes", "train loss", "valid loss", "lr"], rows, notes)
    print((args.report_dir / f"{args.out.name}.md").read_text())
    return result["status"]


if __name__ == "__main__":
    sys.exit(main())
