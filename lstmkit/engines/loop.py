"""The specification engine: the cells of ``lstmkit.nn.cells`` in a plain time loop, under autograd.

Slow and obviously right. It serves every configuration and is what every other engine is tested
against (outputs, states, gate records and every gradient). The input part of each step is already
in ``xg``, so the cell is called with ``w_ih=None``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.engines.contract import (GRUResult, GRUWeights, LayerSpec, LSTMResult, LSTMState,
                                      LSTMWeights, Masks, RNNResult, RNNWeights, Steps)

name = "loop"
serves = "every LSTM variant, GRU and RNN, any dtype and device, under autograd (the specification)"


def why_not(spec: LayerSpec) -> str | None:
    return None


def _order(steps: int, reverse: bool) -> range:
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _active(steps: Steps, t: int, batch: int) -> int:
    if steps.lengths is not None:
        raise ValueError("the loop engine takes varying lengths as batch_sizes (a packed batch), not as "
                         "a lengths tensor")
    return batch if steps.batch_sizes is None else steps.batch_sizes[t]


def _held(new: Tensor, old: Tensor, n: int) -> Tensor:
    """The state after a step that ran on the first n rows: the others keep theirs."""
    return torch.cat([new, old[n:]]) if n < old.shape[0] else new


def _padded(v: Tensor, batch: int) -> Tensor:
    """A step's output for the first rows, zero for the inactive rest."""
    return torch.cat([v, v.new_zeros(batch - v.shape[0], v.shape[1])]) if v.shape[0] < batch else v


def lstm(xg: Tensor, state: LSTMState, weights: LSTMWeights, masks: Masks = Masks(),
         steps: Steps = Steps()) -> LSTMResult:
    from lstmkit.nn.cells import lstm_cell

    count, batch, _ = xg.shape
    h, c = state
    masks = Masks(*(None if m is None else m.detach() for m in masks))     # constants: no gradient
    coupled = weights.coupled(c.shape[-1])
    ys, gates, cells = [None] * count, [None] * count, [None] * count
    for t in _order(count, steps.reverse):
        n = _active(steps, t, batch)
        step = lstm_cell(xg[t, :n], h[:n], c[:n], None, weights.w_hh, w_hr=weights.w_hr,
                         w_ci=weights.w_ci, w_cf=weights.w_cf, w_co=weights.w_co, ln_hh=weights.ln_hh,
                         ln_c_w=weights.ln_c_w, ln_c_b=weights.ln_c_b, coupled=coupled,
                         h_mask=None if masks.h_mask is None else masks.h_mask[:n],
                         zh=None if masks.zh is None else masks.zh[t, :n],
                         zc=None if masks.zc is None else masks.zc[t, :n], eps=weights.eps)
        h, c = _held(step.h, h, n), _held(step.c, c, n)
        acts = [step.f, step.g, step.o] if coupled else [step.i, step.f, step.g, step.o]
        ys[t], gates[t], cells[t] = _padded(step.h, batch), _padded(torch.cat(acts, -1), batch), \
            _padded(step.c, batch)
    return LSTMResult(torch.stack(ys), h, c, torch.stack(gates).detach(), torch.stack(cells).detach())


def gru(xg: Tensor, h0: Tensor, weights: GRUWeights, steps: Steps = Steps()) -> GRUResult:
    from lstmkit.nn.cells import gru_cell

    count, batch, _ = xg.shape
    h = h0
    ys, gates = [None] * count, [None] * count
    for t in _order(count, steps.reverse):
        n = _active(steps, t, batch)
        h_new, g = gru_cell(xg[t, :n], h[:n], None, weights.w_hh, None, weights.b_hh)
        h = _held(h_new, h, n)
        ys[t], gates[t] = _padded(h_new, batch), _padded(g, batch)
    return GRUResult(torch.stack(ys), h, torch.stack(gates).detach())


def rnn(xg: Tensor, h0: Tensor, weights: RNNWeights, steps: Steps = Steps()) -> RNNResult:
    from lstmkit.nn.cells import rnn_cell

    count, batch, _ = xg.shape
    h = h0
    ys = [None] * count
    for t in _order(count, steps.reverse):
        n = _active(steps, t, batch)
        h_new = rnn_cell(xg[t, :n], h[:n], None, weights.w_hh, nonlinearity=weights.nonlinearity)
        h = _held(h_new, h, n)
        ys[t] = _padded(h_new, batch)
    return RNNResult(torch.stack(ys), h)
