"""`lstmkit bench`: time an engine against torch.nn.LSTM on this machine, one size at a time."""
from __future__ import annotations

import json
import os

from lstmkit import engines
from lstmkit.errors import BackendUnavailable, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="time an LSTM engine against torch.nn.LSTM here",
                              description="Forward+backward time of lstmkit.LSTM on one engine and of "
                                          "torch.nn.LSTM, same weights and inputs, median of several runs. "
                                          "Full tables: benchmarks/.")
    p.add_argument("--backend", default="bptt", choices=engines.names(),
                   help="the engine to time (default: %(default)s)")
    p.add_argument("--batch", type=int, default=32, help="sequences per batch (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=256,
                   help="input and hidden size (default: %(default)s)")
    p.add_argument("--steps", type=int, default=100, help="time steps (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed runs of each, the median reported (default: %(default)s)")
    p.add_argument("--layer-norm", action="store_true",
                   help="time the layer-normalised variant (default: off)")
    p.add_argument("--peephole", action="store_true", help="time the peephole variant (default: off)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (default: off)")
    p.set_defaults(func=run)


def _available_bytes() -> int | None:
    """Memory this process could still take (MemAvailable on Linux), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def needed_bytes(batch: int, hidden: int, steps: int) -> int:
    """About what timing two LSTMs (ours and torch's, input size = hidden) side by side takes in
    float32: weights and their gradients, the input and its gradient, and per engine the
    activations kept for the backward pass (gates, cell and hidden states: ~10 H per step and row)."""
    weights = 4 * hidden * (2 * hidden) + 8 * hidden
    return 4 * (2 * 2 * weights + 2 * steps * batch * hidden + 2 * steps * batch * hidden * 10)


def _check_fits_in_memory(batch: int, hidden: int, steps: int) -> None:
    needed, available = needed_bytes(batch, hidden, steps), _available_bytes()
    if available is not None and needed > available:
        raise UsageError(f"--batch {batch} --hidden {hidden} --steps {steps} need about "
                         f"{needed / 2**30:,.1f} GiB of memory, and {available / 2**30:,.1f} GiB "
                         f"are available here; choose smaller sizes")


def run(args) -> int:
    from lstmkit.benchmark import compare_lstm, machine

    for name in ("batch", "hidden", "steps", "repeats"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    _check_fits_in_memory(args.batch, args.hidden, args.steps)
    variant = {k: True for k in ("layer_norm", "peephole") if getattr(args, k)}
    try:
        result = compare_lstm(args.backend, args.batch, args.hidden, args.steps, repeats=args.repeats, **variant)
    except BackendUnavailable as error:
        raise UsageError(str(error)) from None
    except RuntimeError as error:  # the estimate missed: an allocation failed all the same
        if "alloc" not in str(error) and "out of memory" not in str(error):
            raise
        raise UsageError(f"--batch {args.batch} --hidden {args.hidden} --steps {args.steps} do "
                         f"not fit in memory here ({str(error).splitlines()[0][:120]}); choose "
                         f"smaller sizes") from None
    result["machine"] = machine()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"B={args.batch} H={args.hidden} T={args.steps} {variant or 'plain'} on {result['machine']['cpu_model']}"
          f" ({result['machine']['threads']} threads)")
    print(f"  lstmkit[{args.backend}]  {result['ours_s'] * 1e3:9.2f} ms  ({result['ours_gflops']:.1f} GFLOP/s)")
    print(f"  torch.nn.LSTM      {result['torch_s'] * 1e3:9.2f} ms")
    print(f"  ratio              {result['ratio']:9.2f}x  (lower is faster)")
    return 0
