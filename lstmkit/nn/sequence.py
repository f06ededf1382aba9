"""The one layout the recurrence engines see, and the way back to what the caller gave.

Engines work on a padded, time-major batch ``(T, B, F)`` whose rows are sorted by decreasing
length, plus ``batch_sizes`` (how many leading rows are active at each step) when lengths vary.
That is PackedSequence's own order, so packing and unpacking are a gather and a scatter.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence


@dataclass
class Layout:
    """How the caller's input was laid out, to put outputs and states back the same way."""

    packed: PackedSequence | None      # the input, when it was packed
    batch_first: bool
    batched: bool
    steps: int                          # T
    batch: int                          # B
    batch_sizes: tuple[int, ...] | None  # active leading rows per step (packed only)
    flat_index: Tensor | None           # (N,) position t*B + b of each packed row in the padded (T*B) view
    lengths: Tensor | None = None       # (B,) a padded batch's lengths, rows in the caller's order

    @property
    def sorted_indices(self) -> Tensor | None:
        return None if self.packed is None else self.packed.sorted_indices

    @property
    def unsorted_indices(self) -> Tensor | None:
        return None if self.packed is None else self.packed.unsorted_indices


def to_time_major(input: Tensor | PackedSequence, batch_first: bool,
                  lengths: Tensor | None = None) -> tuple[Tensor, Layout]:
    """Return the input as (T, B, F), padded with zeros past each sequence's end, and its layout.
    ``lengths`` go with a padded batch whose rows stay in the caller's order."""
    if isinstance(input, PackedSequence):
        sizes = tuple(input.batch_sizes.tolist())
        steps, batch = len(sizes), sizes[0]
        active = torch.arange(batch)[None, :] < input.batch_sizes[:, None]   # (T, B)
        flat_index = active.flatten().nonzero().squeeze(1).to(input.data.device)
        padded = input.data.new_zeros(steps * batch, input.data.shape[-1])
        padded = padded.index_copy(0, flat_index, input.data).view(steps, batch, -1)  # (T, B, F)
        return padded, Layout(input, batch_first, True, steps, batch, sizes, flat_index)
    batched = input.dim() == 3
    if not batched:
        x = input.unsqueeze(1)                                               # (T, 1, F)
    else:
        x = input.transpose(0, 1) if batch_first else input                 # (T, B, F)
    return x, Layout(None, batch_first, batched, x.shape[0], x.shape[1], None, None, lengths)


def from_time_major(y: Tensor, layout: Layout) -> Tensor | PackedSequence:
    """Inverse of ``to_time_major`` for an output (T, B, F')."""
    if layout.packed is not None:
        data = y.reshape(layout.steps * layout.batch, -1).index_select(0, layout.flat_index)
        p = layout.packed
        return PackedSequence(data, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
    if not layout.batched:
        return y.squeeze(1)
    return y.transpose(0, 1) if layout.batch_first else y


def states_in(state: Tensor, layout: Layout) -> Tensor:
    """A caller's state (L·D, B, S) or (L·D, S) in the engines' row order."""
    if not layout.batched:
        return state.unsqueeze(1)
    if layout.sorted_indices is not None:
        return state.index_select(1, layout.sorted_indices)
    return state


def states_out(state: Tensor, layout: Layout) -> Tensor:
    """Inverse of ``states_in``."""
    if not layout.batched:
        return state.squeeze(1)
    if layout.unsorted_indices is not None:
        return state.index_select(1, layout.unsorted_indices)
    return state


def per_sequence(t: Tensor, layout: Layout) -> Tensor:
    """A per-step record (T, B, S) in the caller's batch order and layout (for tracing)."""
    if layout.unsorted_indices is not None:
        t = t.index_select(1, layout.unsorted_indices)
    if not layout.batched:
        return t.squeeze(1)
    return t.transpose(0, 1) if layout.batch_first else t
