"""Timing LSTM engines side by side: same process, same inputs, warm-up, median of several runs.

Absolute times on a shared machine mean little; ratios measured in one run mean a lot, so every
measurement here is reported next to torch.nn.LSTM's.
"""
from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_backward(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A closure running one forward and backward pass of ``module`` on ``x``."""
    def run() -> None:
        y, _ = module(x)
        y.sum().backward()
    return run


def compare_lstm(backend: str, batch: int, hidden: int, steps: int, input_size: int | None = None,
                 repeats: int = 5, **variant) -> dict:
    """Forward+backward time of ``lstmkit.LSTM(backend=...)`` and ``torch.nn.LSTM``, same weights."""
    from lstmkit import LSTM

    input_size = input_size or hidden
    torch.manual_seed(0)
    theirs = nn.LSTM(input_size, hidden)
    ours = LSTM(input_size, hidden, backend=backend, **variant)
    ours.load_state_dict(theirs.state_dict(), strict=not variant)
    x = torch.randn(steps, batch, input_size, requires_grad=True)
    # interleave the two so that load changes on a shared machine hit both alike
    t_theirs, t_ours = [], []
    for _ in range(repeats):
        t_theirs.append(median_time(forward_backward(theirs, x), repeats=1))
        t_ours.append(median_time(forward_backward(ours, x), repeats=1))
    ours_s, torch_s = statistics.median(t_ours), statistics.median(t_theirs)
    flops = 3 * 8 * batch * hidden * (input_size + hidden) * steps   # forward+backward, DESIGN.md
    return {"backend": backend, "B": batch, "H": hidden, "I": input_size, "T": steps,
            "variant": variant, "ours_s": ours_s, "torch_s": torch_s, "ratio": ours_s / torch_s,
            "ours_gflops": flops / ours_s / 1e9}


def machine() -> dict:
    """What the numbers were measured on."""
    return {"processor": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_model": _cpu_model()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
