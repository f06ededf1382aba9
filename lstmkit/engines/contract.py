"""The recurrence contract: what a layer hands an engine, as a few named structures.

A layer computes the input part of every step as one matrix product, ``xg = x @ W_ih.T + b``
(T, B, G·H), and hands one layer-direction's recurrence to an engine:

    result = engine.lstm(xg, LSTMState(h0, c0), LSTMWeights(w_hh, ...), Masks(...), Steps(...))
    result.y, result.h_n, result.c_n, result.gates, result.cells

Gate order is PyTorch's: i, f, g, o for the LSTM (f, g, o when the gates are coupled, G = 3),
r, z, n for the GRU. Rows past ``steps.batch_sizes[t]`` hold their state and give zero output at
step t. Zoneout follows Krueger et al.: ``c_t = zc·c_{t-1} + (1-zc)·c'`` and
``h_t = zh·h_{t-1} + (1-zh)·h'``, where h' is computed from the un-zoned c'.

Every structure is a NamedTuple: a pytree that torch.compile and torch.export see through, and
one definition that engines, tests and benchmarks share.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:
    from lstmkit.nn.cells import LSTMVariant


class Steps(NamedTuple):
    """Which steps run, in which order, on how many rows."""

    batch_sizes: tuple[int, ...] | None = None   # active leading rows per step (packed, sorted by length)
    reverse: bool = False                          # run t = T-1 .. 0
    # (B,) the length of each row of a padded batch in the caller's order: what a recorded graph
    # (torch.export) holds instead of batch_sizes, which are numbers read off the data. Eagerly the
    # layer packs such a batch, so only engines that serve exporting see it.
    lengths: Tensor | None = None


class LSTMState(NamedTuple):
    h: Tensor     # (B, P) hidden state, P = proj_size or H
    c: Tensor     # (B, H) cell state


class LSTMWeights(NamedTuple):
    """One layer-direction's recurrent tensors; the options a layer does not have are None."""

    w_hh: Tensor                   # (G·H, P), already weight-dropped
    w_hr: Tensor | None = None     # (P, H) projection of h (proj_size)
    w_ci: Tensor | None = None     # (H,) peephole of the input gate (None when coupled)
    w_cf: Tensor | None = None     # (H,) peephole of the forget gate
    w_co: Tensor | None = None     # (H,) peephole of the output gate (reads the new cell)
    ln_hh: Tensor | None = None    # (G·H,) gain of the layer norm on h @ w_hh.T (the biases are in xg)
    ln_c_w: Tensor | None = None   # (H,) gain of the layer norm on c before tanh
    ln_c_b: Tensor | None = None   # (H,) shift of that norm
    eps: float = 1e-5              # of every layer norm

    def coupled(self, hidden: int) -> bool:
        """CIFG (i = 1 - f): the gate rows are f, g, o only."""
        return self.w_hh.shape[0] == 3 * hidden


class Masks(NamedTuple):
    """Constants drawn by the layer for one forward pass; no gradient flows into them."""

    h_mask: Tensor | None = None   # (B, P) recurrent dropout on h before W_hh, pre-scaled by 1/(1-p)
    zh: Tensor | None = None       # (T, B, P) zoneout of h: Bernoulli masks, or keep-probabilities
    zc: Tensor | None = None       # (T, B, H) zoneout of c


class LSTMResult(NamedTuple):
    y: Tensor        # (T, B, P) outputs, zero past a row's end
    h_n: Tensor      # (B, P) final hidden state
    c_n: Tensor      # (B, H) final cell state
    gates: Tensor    # (T, B, G·H) gate activations [i,] f, g, o: a record, not differentiable
    cells: Tensor    # (T, B, H) cell state after each step: a record, not differentiable


class GRUWeights(NamedTuple):
    w_hh: Tensor                   # (3H, H)
    b_hh: Tensor | None = None     # (3H,): inside r ⊙ (W_hn h + b_hn), so not foldable into xg


class GRUResult(NamedTuple):
    y: Tensor        # (T, B, H)
    h_n: Tensor      # (B, H)
    gates: Tensor    # (T, B, 3H) r, z, n: a record


class RNNWeights(NamedTuple):
    w_hh: Tensor                   # (H, H); both biases are in xg
    nonlinearity: str = "tanh"     # "tanh" | "relu"


class RNNResult(NamedTuple):
    y: Tensor        # (T, B, H)
    h_n: Tensor      # (B, H)


class LayerSpec(NamedTuple):
    """What an engine is asked to run now: enough to say yes, or why not. (A NamedTuple: a layer
    makes one on every call, and that must cost next to nothing.)"""

    kind: str                         # "LSTM" | "GRU" | "RNN_TANH" | "RNN_RELU"
    variant: LSTMVariant | None       # the LSTM's options (None for GRU and RNN)
    dtype: torch.dtype
    device: torch.device
    training: bool
    packed: bool = False              # the input is a PackedSequence
    compiling: bool = False           # inside torch.compile (dynamo is tracing)
    exporting: bool = False           # inside torch.export, torch.onnx.export or torch.jit.trace


class Engine(Protocol):
    """One engine. Recurrence engines run one layer-direction through ``lstm``/``gru``/``rnn``;
    an engine that runs a whole stack at once (torch's fused op) implements ``run_stack`` instead."""

    name: str
    serves: str      # one line naming what it runs, shown when it is asked for something else

    def why_not(self, spec: LayerSpec) -> str | None:
        """None when it can run ``spec`` now, else the reason (what it supports follows in errors)."""

    def lstm(self, xg: Tensor, state: LSTMState, weights: LSTMWeights, masks: Masks,
             steps: Steps) -> LSTMResult: ...

    def gru(self, xg: Tensor, h0: Tensor, weights: GRUWeights, steps: Steps) -> GRUResult: ...

    def rnn(self, xg: Tensor, h0: Tensor, weights: RNNWeights, steps: Steps) -> RNNResult: ...


__all__ = ["LayerSpec", "Engine", "Steps", "LSTMState", "LSTMWeights", "Masks", "LSTMResult", "GRUWeights", "GRUResult",
           "RNNWeights", "RNNResult"]
