"""How a recurrence is cut into Triton programs: block sizes, programs per batch tile, weights on chip.

A launch runs grid (batch tiles, programs). The programs of one batch tile split the hidden units
(tiles of ``block_h``) and meet at a grid barrier inside each step; one program alone loops over
all tiles and needs no barrier. The barrier needs every program resident at once, so programs ×
batch tiles never exceeds the multiprocessors. ``resident``: each program has one tile and the
whole reduction fits one chunk, so its slice of W_hh is loaded once before the steps and stays in
registers; otherwise the weights are streamed from L1/L2 each step in ``block_k`` chunks.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, replace

import torch

_OVERRIDE: contextvars.ContextVar["Tiling | None"] = contextvars.ContextVar("lstmkit_triton_tiling", default=None)

# A program's slice of W_hh up to this size is kept in registers (bytes; 16K 32-bit registers of
# the 64K a multiprocessor has, for 128 threads: 128 a thread).
RESIDENT_BYTES = 32 * 1024
# Recurrent weights up to this size are run by one program per batch tile (no grid barrier):
# they are re-read from the L1 each step, which costs less than a barrier round.
ONE_PROGRAM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Tiling:
    block_b: int            # batch rows per program (power of two; >= 16 on a GPU for tl.dot)
    block_h: int            # hidden units (and projected outputs) per tile
    block_k: int            # reduction chunk of the recurrent products
    programs: int           # programs splitting one batch tile's hidden units (1: no barrier)
    resident: bool = False          # forward: W_hh rows of the program's one tile on chip
    resident_back: bool = False     # backward: W_hh columns of the program's one tile on chip
    num_warps: int = 4

    def tiles(self, size: int) -> int:
        return -(-size // self.block_h)

    def batch_tiles(self, batch: int) -> int:
        return -(-batch // self.block_b)

    def why_not(self, hidden: int, out: int, on_gpu: bool) -> str | None:
        """None when this tiling can run a layer of these sizes, else what is wrong with it."""
        for field in ("block_b", "block_h", "block_k"):
            value = getattr(self, field)
            if value & (value - 1) or value < (16 if on_gpu else 1):
                return f"{field}={value} must be a power of two (at least 16 on a GPU)"
        if self.programs < 1 or self.programs > self.tiles(hidden):
            return f"programs={self.programs} must lie in [1, {self.tiles(hidden)}] (the tiles of {hidden} units)"
        if self.programs > 1 and not on_gpu:
            return "the interpreter runs programs one after another, so a grid barrier would wait forever: programs=1"
        if self.resident and (self.tiles(hidden) != self.programs or out > self.block_k):
            return "resident weights need one tile per program and block_k >= the input width of W_hh"
        if self.resident_back and (self.tiles(out) != self.programs or hidden > self.block_k):
            return "resident backward weights need one column tile per program and block_k >= hidden"
        return None


@contextlib.contextmanager
def use_tiling(tiling: Tiling):
    """Run every recurrence in this block with ``tiling`` (benchmarks and tests explore with it)."""
    token = _OVERRIDE.set(tiling)
    try:
        yield tiling
    finally:
        _OVERRIDE.reset(token)


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def choose(batch: int, hidden: int, out: int, gates: int, dtype: torch.dtype, device: torch.device) -> Tiling:
    """The tiling for one layer-direction: the ``use_tiling`` one if set, else the default below."""
    forced = _OVERRIDE.get()
    if forced is not None:
        return forced
    block_b = min(64, max(16, _pow2(batch)))
    if device.type != "cuda":                      # the interpreter: one program, small blocks
        return Tiling(block_b, min(_pow2(hidden), 32), min(_pow2(max(hidden, out)), 32), programs=1)
    size = torch.tensor([], dtype=dtype).element_size()
    block_k = 64
    if gates * hidden * out * size <= ONE_PROGRAM_BYTES:
        return Tiling(block_b, min(_pow2(hidden), 64), block_k, programs=1)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    room = max(1, sms // -(-batch // block_b))    # programs per batch tile that stay co-resident
    block_h = 16
    while -(-hidden // block_h) > room:
        block_h *= 2
    tiling = Tiling(block_b, block_h, block_k, programs=-(-hidden // block_h))
    resident = gates * block_h * _pow2(out) * size <= RESIDENT_BYTES
    back = gates * block_h * _pow2(hidden) * size <= RESIDENT_BYTES and tiling.tiles(out) == tiling.programs
    k_fits = max(_pow2(out), _pow2(hidden)) if resident or back else block_k
    return replace(tiling, block_k=k_fits, resident=resident, resident_back=back)
