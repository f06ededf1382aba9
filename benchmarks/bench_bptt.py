"""Forward+backward time of lstmkit.LSTM(backend="bptt") against torch.nn.LSTM, same weights.

    python benchmarks/bench_bptt.py                      # the issue's grid, writes JSON + table
    python benchmarks/bench_bptt.py --batch 32 --hidden 512 --steps 100 --repeats 3

For each batch B, hidden size H (= input size) and length T, both modules run the same input
and weights in the same process, alternately, after a warm-up; the table shows the median time
of each, their ratio, and the T=max/T=min time ratio (linear cost gives max/min, e.g. 10 for
100 -> 1000). The flop floor is the forward+backward count, ≈ 3 · 8·B·H·(I+H) per step.
These machines are shared: the load average is recorded beside the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import lstmkit
from lstmkit.benchmark import interleaved_samples

DEFAULT_OUT = Path(__file__).parent / "results" / "bptt.json"


def forward_backward(module, x):
    """One training step's worth of recurrent work: forward, then gradients of x and every weight."""
    y, (h_n, c_n) = module(x)
    torch.autograd.grad(y.sum() + h_n.sum() + c_n.sum(), [x, *module.parameters()])


def measure(batch: int, hidden: int, all_steps: list[int], repeats: int, dtype: torch.dtype) -> list[dict]:
    """Median forward+backward times for every T at one (B, H).

    Within each repeat the two modules and all lengths run one after the other, so a change in
    the machine's load hits all of them alike (the T ratio compares runs minutes apart otherwise).
    """
    torch.manual_seed(0)
    ours = lstmkit.LSTM(hidden, hidden, backend="bptt", dtype=dtype)
    theirs = torch.nn.LSTM(hidden, hidden, dtype=dtype)
    theirs.load_state_dict(ours.state_dict())
    inputs = {steps: torch.randn(steps, batch, hidden, dtype=dtype, requires_grad=True) for steps in all_steps}
    runs = {(steps, name): (lambda m=module, x=inputs[steps]: forward_backward(m, x))
            for steps in all_steps for name, module in (("bptt", ours), ("torch", theirs))}
    times = interleaved_samples(runs, repeats)
    assert ours.last_backend == "bptt", ours.last_backend
    rows = []
    for steps in all_steps:
        ref, tor = statistics.median(times[steps, "bptt"]), statistics.median(times[steps, "torch"])
        flops = 3 * 8 * batch * hidden * (2 * hidden) * steps
        rows.append({"batch": batch, "hidden": hidden, "steps": steps, "bptt_s": ref, "torch_s": tor,
                     "ratio": ref / tor, "gflops_bptt": flops / ref / 1e9,
                     "runs": {"bptt": times[steps, "bptt"], "torch": times[steps, "torch"]}})
    return rows


def table(rows: list[dict]) -> str:
    by_key = {(r["batch"], r["hidden"], r["steps"]): r for r in rows}
    lines = ["| B | H | T | bptt ms | torch.nn.LSTM ms | ratio | bptt GFLOP/s | T ratio bptt | T ratio torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    steps = sorted({r["steps"] for r in rows})
    for r in rows:
        t_ref = t_torch = ""
        short = by_key.get((r["batch"], r["hidden"], steps[0]))
        if r["steps"] == steps[-1] and short is not None and len(steps) > 1:
            t_ref = f"{r['bptt_s'] / short['bptt_s']:.1f}"
            t_torch = f"{r['torch_s'] / short['torch_s']:.1f}"
        lines.append(f"| {r['batch']} | {r['hidden']} | {r['steps']} | {1e3 * r['bptt_s']:.1f} | "
                     f"{1e3 * r['torch_s']:.1f} | {r['ratio']:.2f} | {r['gflops_bptt']:.1f} | "
                     f"{t_ref} | {t_torch} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size after one warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    load_before = os.getloadavg()
    rows = []
    for batch in args.batch:
        for hidden in args.hidden:
            for r in measure(batch, hidden, sorted(args.steps), args.repeats, dtype):
                rows.append(r)
                print(f"B={batch} H={hidden} T={r['steps']}: bptt {1e3 * r['bptt_s']:.1f} ms, "
                      f"torch {1e3 * r['torch_s']:.1f} ms, ratio {r['ratio']:.2f}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    text = table(rows)
    print(text)
    print(f"\nload average (1, 5, 15 min) before {load_before}, after {load_after}; "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {args.dtype}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": args.dtype,
              "cpu_count": os.cpu_count(), "load_before": load_before, "load_after": load_after,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "repeats": args.repeats,
              "results": rows, "table": text}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(args.out)                                # atomic: a reader never sees half a file
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
