"""Sequential MNIST quality: `lstmkit train seqmnist` in each reading order (never a test).

    python benchmarks/seqmnist.py [--modes rows[,pixels,permuted]] [--threads 1]
                                  [--out runs/benchmarks/seqmnist] [-- extra flags]

Each run is the real CLI in a subprocess; the test accuracy is that of the best-on-validation
weights (5,000 training images held out). Writes OUT.json and OUT.md.
Target: row by row (28 steps of 28 pixels), test accuracy >= 98 %. Pixel by pixel
(784 steps) is about 28 times the work per image; published LSTMs reach 98-99 % (pixels) and
88-92 % (permuted) after many epochs, far beyond a shared 2-core CPU.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_runs import parse_task_args, run_measured, task_parser, write_markdown  # noqa: E402

FLAGS = {
    "rows": ["--hidden-size", "128", "--epochs", "6", "--batch-size", "128", "--lr", "2e-3"],
    "pixels": ["--hidden-size", "128", "--epochs", "20", "--batch-size", "128", "--lr", "1e-3"],
    "permuted": ["--hidden-size", "128", "--epochs", "20", "--batch-size", "128", "--lr", "1e-3"],
}


def main() -> int:
    parser = task_parser(__doc__.splitlines()[0], "seqmnist")
    parser.add_argument("--modes", default="rows")
    args, extra, root = parse_task_args(parser)
    report, rows = {}, []
    for mode in args.modes.split(","):
        run_dir = args.out / mode
        argv = ["train", "seqmnist", "--npz", str(root / "mnist" / "mnist.npz"), "--mode", mode, *FLAGS[mode],
                *extra, "--out", str(run_dir), "--overwrite", "--no-progress", "--device", "cpu"]
        result = run_measured(argv, args.out / f"{mode}.log", args.threads)
        if result["status"] == 0:
            result["metrics"] = json.loads((run_dir / "test_metrics.json").read_text())
        report[mode] = result
        metrics = result.get("metrics", {})
        rows.append([mode, f"{metrics.get('test_accuracy', float('nan')):.4f}",
                     f"{metrics.get('valid_accuracy', float('nan')):.4f}",
                     f"{metrics.get('best_epoch', '-')}/{len(metrics.get('history', []))}",
                     result["wall_minutes"], result["cpu_minutes"], result["load_before"][0]])
    (args.report_dir / f"{args.out.name}.json").write_text(json.dumps(report, indent=1))
    notes = [f"`{r['command']}`" for r in report.values()]
    write_markdown(args.report_dir / f"{args.out.name}.md", "Sequential MNIST (LSTM, last hidden state -> linear)",
                   ["mode", "test accuracy", "valid accuracy", "best epoch", "wall min", "CPU min", "load (1 min)"],
                   rows, notes)
    print((args.report_dir / f"{args.out.name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
