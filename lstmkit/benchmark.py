"""Timing LSTM engines side by side: same process, same inputs, warm-up, median of several runs.

Absolute times on a shared machine mean little; ratios measured in one run mean a lot, so every
measurement here is reported next to torch.nn.LSTM's.
"""
from __future__ import annotations

import gc
import platform
import statistics
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.benchmark import Timer


def seconds_per_call(fn: Callable[[], object], inner: int = 1) -> float:
    """One sample: the mean seconds of ``inner`` calls of ``fn``, timed by torch's benchmark Timer
    (which, as timeit, keeps the garbage collector off while timing). Garbage is collected first,
    so a collection triggered by one contender's objects (an autograd graph) does not land in the
    next contender's sample."""
    gc.collect()
    return Timer(stmt="fn()", globals={"fn": fn}).timeit(inner).mean


def interleaved_samples(fns: dict, repeats: int, inner: int = 1) -> dict:
    """name -> ``repeats`` samples (seconds per call) of ``fns[name]``: one warm-up round, then
    rounds that time each function in turn, so load changes on a shared machine hit all alike."""
    for fn in fns.values():
        seconds_per_call(fn, inner)
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(seconds_per_call(fn, inner))
    return samples


def interleaved(fns: dict, repeats: int, inner: int = 1) -> dict:
    """name -> median seconds per call of ``fns[name]``, timed as ``interleaved_samples`` does."""
    return {name: statistics.median(times) for name, times in interleaved_samples(fns, repeats, inner).items()}


def forward_backward(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A closure running one forward and backward pass of ``module`` on ``x``."""
    def run() -> None:
        module.zero_grad(set_to_none=True)
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
    times = interleaved({"torch": forward_backward(theirs, x), "ours": forward_backward(ours, x)}, repeats)
    ours_s, torch_s = times["ours"], times["torch"]
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
