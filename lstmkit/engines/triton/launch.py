"""One launch of a recurrence kernel: its tiling, the constants it is specialised on, stand-ins for
the tensors a variant lacks, and what happens when a GPU cannot compile it.

A kernel that fails to compile or launch on a device is recorded: ``failure`` then names it for
that device, kind and dtype, so the engine declines them from then on (``why_not``) and a layer
choosing automatically moves to the next engine instead of failing again.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.engines.bptt.common import StepPlan
from lstmkit.engines.triton import loader, plan as tiling_plan
from lstmkit.errors import BackendUnavailable

_FAILURES: dict[tuple[str, str, torch.dtype], str] = {}


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
        self.interpret = like.device.type != "cuda"
        self.kernels = loader.kernels(self.interpret).KERNELS
        self.tiling = tiling_plan.choose(batch, hidden, out, gates, like.dtype, like.device)
        self.shape = {"H": hidden, "P": out, "G": gates}
        reason = self.tiling.why_not(hidden, out, on_gpu=not self.interpret)
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

    def run(self, kernel: str, batch: int, args: list, options: dict[str, bool], resident: str = "") -> None:
        """Launch ``kernel`` over grid (batch tiles, programs); None arguments get a stand-in."""
        t = self.tiling
        stand_in = next(a for a in args if isinstance(a, Tensor))
        args = [stand_in if a is None else a.contiguous() if isinstance(a, Tensor) else a for a in args]
        hidden, out = self.shape["H"], self.shape["P"]
        constants = dict(self.shape, TILES=t.tiles(hidden), P_TILES=t.tiles(out), BLOCK_B=t.block_b,
                         BLOCK_H=t.block_h, BLOCK_K=t.block_k, PROGRAMS=t.programs,
                         RESIDENT=bool(resident and getattr(t, resident)), INTERPRET=self.interpret, **options)
        grid = (t.batch_tiles(batch), t.programs)
        if self.interpret:
            self.kernels[kernel][grid](*args, **constants)
            return
        try:
            with torch.cuda.device(self.device):
                self.kernels[kernel][grid](*args, **constants, num_warps=t.num_warps)
        except Exception as error:   # compile or launch failure: this engine declines from now on
            reason = f"{kernel} failed on {self.device} ({type(error).__name__}: {str(error)[:200]})"
            _FAILURES[(str(self.device), self.kind, self.dtype)] = reason
            raise BackendUnavailable(f"triton engine: {reason}") from error
