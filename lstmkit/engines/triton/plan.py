"""How a recurrence is cut into Triton programs: block sizes, programs per batch tile, weights on chip.

A launch runs grid (batch tiles, programs). The programs of one batch tile split the hidden units
(tiles of ``block_h``) and meet at a grid barrier inside each step; one program alone loops over
all tiles and needs no barrier. The barrier needs every program resident at once, so programs ×
batch tiles never exceeds the multiprocessors. ``resident``: each program has one tile, so its
slice of W_hh (all of the reduction in one chunk) is loaded once before the steps and stays on
chip; otherwise the weights are streamed through L1/L2 each step in ``block_k`` chunks.
The defaults below are what compiles without register spills for sm_90; which of them is fastest
is for a GPU to say (benchmarks/bench_gpu.py times alternatives beside them).
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, replace

import torch

_OVERRIDE: contextvars.ContextVar["Tiling | None"] = contextvars.ContextVar("lstmkit_triton_tiling", default=None)

# Float32 weights up to this size per program stay on chip (bytes): Triton stages such resident
# blocks in shared memory (228 KiB a multiprocessor on an H100). Resident 16-bit blocks stay in
# registers instead and spill (ptxas, through compile_check.py), so those are streamed.
RESIDENT_BYTES = 96 * 1024
# Recurrent weights up to this size are run by one program per batch tile, which then needs no
# grid barrier and re-reads them through its L1 every step.
ONE_PROGRAM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Tiling:
    block_b: int            # batch rows per program (power of two; >= 16 on a GPU for tl.dot)
    block_h: int            # hidden units (and projected outputs) per tile
    block_k: int            # reduction chunk of the recurrent products (streamed weights)
    programs: int           # programs splitting one batch tile's hidden units (1: no barrier)
    resident: bool = False          # forward: W_hh rows of the program's one tile on chip
    resident_back: bool = False     # backward: W_hh columns of the program's one tile on chip
    num_warps: int = 4
    num_stages: int = 1     # software pipelining of the chunk loops (1: none)

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
        if self.resident and self.tiles(hidden) != self.programs:
            return "resident weights need one tile of hidden units per program"
        if self.resident_back and self.tiles(out) != self.programs:
            return "resident backward weights need one tile of h's columns per program"
        return None

    def chunk(self, resident: bool, width: int) -> int:
        """The reduction chunk of a product over ``width``: all of it when the weights are resident
        (at least 16, the least reduction tl.dot compiles for on a GPU)."""
        return max(16, pow2(width)) if resident else self.block_k


@contextlib.contextmanager
def use_tiling(tiling: Tiling):
    """Run every recurrence in this block with ``tiling`` (benchmarks and tests explore with it)."""
    token = _OVERRIDE.set(tiling)
    try:
        yield tiling
    finally:
        _OVERRIDE.reset(token)


def pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def choose(batch: int, hidden: int, out: int, gates: int, dtype: torch.dtype, sms: int | None) -> Tiling:
    """The tiling for one layer-direction: the ``use_tiling`` one if set, else the default below for a
    GPU of ``sms`` multiprocessors (None: the CPU interpreter)."""
    forced = _OVERRIDE.get()
    if forced is not None:
        return forced
    # 16 rows (tl.dot's least) per program: a larger batch runs as more batch tiles, side by side
    block_b = 16
    if sms is None:                                # the interpreter: one program, small blocks
        return Tiling(min(pow2(batch), block_b), min(pow2(hidden), 32), min(pow2(max(hidden, out)), 32), 1)
    # 8 warps, chunks of 32 and no software pipelining kept every default kernel free of register
    # spills when compiled for sm_90 (compile_check.py); 4 warps or chunks of 64 spilled in float32
    base = Tiling(block_b, 32, 32, programs=1, num_warps=8, num_stages=1)
    size = torch.tensor([], dtype=dtype).element_size()
    if gates * hidden * out * size <= ONE_PROGRAM_BYTES:
        return base
    room = sms // base.batch_tiles(batch)         # programs per batch tile that stay co-resident
    for block_h in (16, 32, 64):
        tiles = -(-hidden // block_h)
        if tiles <= room:
            break
    else:                                          # too many rows to split: one program per tile
        return base
    tiling = replace(base, block_h=block_h, programs=tiles)
    on_chip = dtype == torch.float32
    resident = on_chip and gates * block_h * pow2(out) * size <= RESIDENT_BYTES
    back = on_chip and gates * block_h * pow2(hidden) * size <= RESIDENT_BYTES and tiling.tiles(out) == tiles
    return replace(tiling, resident=resident, resident_back=back)
