"""Penn Treebank, word level: `lstmkit train lm` under a wall-time budget, test perplexity (never a test).

    python benchmarks/lm_ptb.py [--max-minutes 60] [--threads 1] [--out runs/benchmarks/lm_ptb]
                                [-- extra flags for `lstmkit train lm`]

Trains on ptb.train.txt, keeps the weights with the best ptb.valid.txt perplexity and scores them
once on ptb.test.txt. On a CPU the 10k-word output layer dominates the cost, so the model uses the
adaptive softmax (an exact distribution, cheaper for rare words). Writes OUT.json and OUT.md.
Target: test perplexity <= 120 (Zaremba et al. 2014 small model: 115).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_runs import parse_task_args, run_measured, run_notes, task_parser, write_markdown  # noqa: E402

FLAGS = ["--level", "word", "--embedding-dim", "200", "--hidden-size", "200", "--num-layers", "2",
         "--dropout", "0.1", "--softmax", "adaptive", "--cutoffs", "2000,6000", "--batch-size", "32",
         "--bptt", "35", "--lr", "3e-3", "--chunks-per-epoch", "415", "--epochs", "1000",
         "--lr-schedule", "plateau", "--lr-step", "1"]


def main() -> int:
    parser = task_parser(__doc__.splitlines()[0], "lm_ptb")
    parser.add_argument("--max-minutes", type=float, default=60.0)
    args, extra, root = parse_task_args(parser)
    run_dir = args.out / "run"
    ptb = root / "ptb"
    argv = ["train", "lm", "--text", str(ptb / "ptb.train.txt"), "--valid-text", str(ptb / "ptb.valid.txt"),
            "--test-text", str(ptb / "ptb.test.txt"), *FLAGS, *extra, "--max-minutes", str(args.max_minutes),
            "--out", str(run_dir), "--overwrite", "--no-progress", "--device", "cpu"]
    result = run_measured(argv, args.out / "train.log", args.threads)
    summary = json.loads((run_dir / "lm_metrics.json").read_text()) if result["status"] == 0 else {}
    curve = summary.get("curve", [])
    test_ppl = math.exp(summary["test_loss"]) if "test_loss" in summary else None
    report = {**result, "test_perplexity": test_ppl, "target": 120,
              "best_valid_perplexity": math.exp(summary["best_valid_loss"]) if summary else None, "curve": curve}
    (args.report_dir / f"{args.out.name}.json").write_text(json.dumps(report, indent=1))
    rows = [[p["epoch"], p["minutes"], f"{math.exp(p['train_loss']):.1f}", f"{math.exp(p['valid_loss']):.1f}",
             f"{p['lr']:.2g}"] for p in curve]
    notes = [f"Test perplexity {test_ppl:.1f} (target <= 120) with the best-on-validation weights." if test_ppl
             else f"run failed: see {result['log']}",
             *run_notes(result)]
    write_markdown(args.report_dir / f"{args.out.name}.md", "Penn Treebank, word-level LSTM",
                   ["epoch (415 chunks = half a pass)", "minutes", "train ppl", "valid ppl", "lr"], rows, notes)
    print((args.report_dir / f"{args.out.name}.md").read_text())
    return result["status"]


if __name__ == "__main__":
    sys.exit(main())
