"""One launch of a recurrence kernel: its tiling, the constants it is specialised on, stand-ins for
the tensors a variant lacks, and what happens when a GPU cannot compile it.

Triton decides once per process whether kernels are compiled or interpreted: ``triton.jit`` reads
TRITON_INTERPRET when a function is decorated, its own library (``tl.zeros``, ``tl.sum`` ...)
included, and an interpreted kernel cannot call a compiled helper nor the reverse. So the kernels
run CUDA tensors in a process that imported Triton without TRITON_INTERPRET=1, and CPU tensors
(the interpreter) in one that imported it with TRITON_INTERPRET=1 set; ``mode`` says which.

A kernel that fails to compile or launch on a device is recorded: ``failure`` then names it for
that device, kind and dtype, so the engine declines them from then on (``why_not``) and a layer
choosing automatically moves to the next engine instead of failing again.
"""
from __future__ import annotations

import torch
from torch import Tensor

import importlib
import os
import sys

from lstmkit.engines.bptt.common import StepPlan
from lstmkit.engines.triton import plan as tiling_plan
from lstmkit.errors import BackendUnavailable

_FAILURES: dict[tuple[str, str, torch.dtype], str] = {}
# While ``compile_check`` runs: called with (kernel, grid, arguments, constants) instead of a launch;
# its ``multiprocessors`` sizes the tilings as on that GPU.
_DRY_RUN: list = []


def mode() -> str:
    """"interpreted" or "compiled": what Triton's kernels are (or will be, once imported) in this process."""
    language = sys.modules.get("triton.language")
    if language is None:
        return "interpreted" if os.environ.get("TRITON_INTERPRET", "0") == "1" else "compiled"
    from triton.runtime.interpreter import InterpretedFunction
    return "interpreted" if isinstance(language.standard.zeros, InterpretedFunction) else "compiled"


def device_reason(device: torch.device) -> str | None:
    """Why this process cannot run the kernels on ``device``'s tensors, or None when it can."""
    if device.type == "cpu":
        return None if mode() == "interpreted" else \
            "CPU tensors run only in Triton's interpreter, in a process started with TRITON_INTERPRET=1 (tests)"
    if device.type != "cuda":
        return f"device {device.type} is not served"
    if mode() == "interpreted":
        return "TRITON_INTERPRET=1 was set when Triton was imported: this process interprets on the CPU"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    return None


def kernels() -> dict:
    """name -> kernel (imported on first use, so that importing lstmkit never imports Triton)."""
    return importlib.import_module("lstmkit.engines.triton.kernels").KERNELS


def failure(device: torch.device, kind: str, dtype: torch.dtype) -> str | None:
    """Why the kernels of ``kind`` failed on ``device`` in ``dtype`` earlier in this process, or None."""
    return _FAILURES.get((str(device), kind, dtype))


def flags(plan: StepPlan, *, peephole=False, ln_hh=False, ln_c=False, proj=False, h_mask=False,
          zoneout_h=False, zoneout_c=False) -> dict[str, bool]:
    """The kernels' switches (constexpr: each combination is its own compiled kernel)."""
    return {"PEEPHOLE": peephole, "LN_HH": ln_hh, "LN_C": ln_c, "PROJ": proj, "H_MASK": h_mask,
            "ZONEOUT_H": zoneout_h, "ZONEOUT_C": zoneout_c, "PACKED": plan.packed, "REVERSE": plan.reverse}


class Launch:
    """The kernels and tiling for one layer-direction of ``kind`` ("LSTM", "GRU", "RNN") on ``like``'s
    device: compiled on CUDA, interpreted on the CPU."""

    def __init__(self, kind: str, like: Tensor, batch: int, hidden: int, out: int, gates: int) -> None:
        self.kind, self.device, self.dtype = kind, like.device, like.dtype
        reason = None if _DRY_RUN else device_reason(like.device)
        if reason is not None:
            raise BackendUnavailable(f"triton engine: {reason}")
        self.interpret = like.device.type != "cuda"
        if not self.interpret:
            sms = torch.cuda.get_device_properties(like.device).multi_processor_count
        else:                                     # the interpreter, or compiling for a GPU (compile_check)
            sms = _DRY_RUN[-1].multiprocessors if _DRY_RUN else None
        self.tiling = tiling_plan.choose(batch, hidden, out, gates, like.dtype, sms)
        self.shape = {"H": hidden, "P": out, "G": gates}
        reason = self.tiling.why_not(hidden, out, on_gpu=sms is not None)
        if reason is not None:
            raise BackendUnavailable(f"triton engine: {self.tiling} cannot run H={hidden}, P={out}: {reason}")

    def partials(self, batch: int) -> Tensor:
        """(programs, B, 2) per-program row sums that a layer norm combines after a barrier."""
        return torch.empty((self.tiling.programs, batch, 2), dtype=torch.float32, device=self.device)

    def counter(self, batch: int) -> Tensor:
        """The barrier counters, one per batch tile, zero at launch."""
        return torch.zeros(self.tiling.batch_tiles(batch), dtype=torch.int32, device=self.device)

    def sizes(self, plan: StepPlan, steps: int) -> Tensor | None:
        """(T,) int32 active rows per time step, or None when every row takes every step."""
        if not plan.packed:
            return None
        sizes = [0] * steps
        for t, n in plan.steps:
            sizes[t] = n
        return torch.tensor(sizes, dtype=torch.int32, device=self.device)

    def prepare(self, kernel: str, batch: int, args: list, options: dict[str, bool], resident: str = ""):
        """(grid, arguments, constants) of a launch; None arguments get a stand-in tensor."""
        t = self.tiling
        stand_in = next(a for a in args if isinstance(a, Tensor))
        args = [stand_in if a is None else a.contiguous() if isinstance(a, Tensor) else a for a in args]
        hidden, out = self.shape["H"], self.shape["P"]
        on_chip = bool(resident and getattr(t, resident))
        # the forward's products reduce over h (P wide), the backward's over the gate rows (H per gate)
        chunk = t.chunk(on_chip, out if resident == "resident" else hidden)
        constants = dict(self.shape, TILES=t.tiles(hidden), P_TILES=t.tiles(out), BLOCK_B=t.block_b,
                         BLOCK_H=t.block_h, BLOCK_K=chunk, PROGRAMS=t.programs, RESIDENT=on_chip,
                         INTERPRET=self.interpret, **options)
        return (t.batch_tiles(batch), t.programs), args, constants

    def run(self, kernel: str, batch: int, args: list, options: dict[str, bool], resident: str = "") -> None:
        """Launch ``kernel`` over grid (batch tiles, programs)."""
        grid, args, constants = self.prepare(kernel, batch, args, options, resident)
        if _DRY_RUN:
            _DRY_RUN[-1](kernel, grid, args, constants, self.tiling)
            return
        if self.interpret:
            kernels()[kernel][grid](*args, **constants)
            return
        try:
            with torch.cuda.device(self.device):
                kernels()[kernel][grid](*args, **constants, num_warps=self.tiling.num_warps,
                                         num_stages=self.tiling.num_stages)
        except Exception as error:   # compile or launch failure: this engine declines from now on
            reason = f"{kernel} failed on {self.device} ({type(error).__name__}: {str(error)[:200]})"
            _FAILURES[(str(self.device), self.kind, self.dtype)] = reason
            raise BackendUnavailable(f"triton engine: {reason}") from error
