"""The scan engine: the specification cells inside torch's ``scan``, for portable graphs.

``torch.export`` (and with it ``torch.onnx.export``) turns a ``scan`` into one loop node whose
length is a dynamic dimension, so a model exported through this engine takes any sequence length
and batch size; ONNX gets a ``Scan`` node whose body is the cell. A packed batch, or a padded one
with its lengths as a tensor, runs every row at every step and keeps a finished row's state with
a per-step mask, which needs no data-dependent shapes.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan as _scan

from lstmkit.engines.contract import (GRUResult, GRUWeights, LayerSpec, LSTMResult, LSTMState,
                                      LSTMWeights, Masks, RNNResult, RNNWeights, Steps)

name = "scan"
serves = ("every LSTM variant, GRU and tanh/relu RNN as a torch scan of the specification cells "
          "(torch.export and ONNX with dynamic lengths); not under torch.jit.trace")


def why_not(spec: LayerSpec) -> str | None:
    if torch.jit.is_tracing():
        return "torch.jit.trace cannot record torch's scan"
    return None


def _active(xg: Tensor, steps: Steps) -> Tensor | None:
    """(T, B, 1) 1 where a row is inside its sequence at step t, or None when every row is."""
    if steps.lengths is not None:                                    # a padded batch, any row order
        times = torch.arange(xg.shape[0], device=xg.device)
        return (times[:, None] < steps.lengths.to(xg.device)[None, :]).to(xg.dtype).unsqueeze(-1)
    if steps.batch_sizes is None:
        return None
    sizes = torch.tensor(steps.batch_sizes, device=xg.device)
    rows = torch.arange(xg.shape[1], device=xg.device)
    return (rows[None, :] < sizes[:, None]).to(xg.dtype).unsqueeze(-1)


def _keep(new: Tensor, old: Tensor, active: Tensor | None) -> Tensor:
    return new if active is None else active * new + (1 - active) * old


def _shown(v: Tensor, active: Tensor | None) -> Tensor:
    """A step's output: a fresh tensor (scan outputs may not alias the carry), zero past a row's end."""
    return v.clone() if active is None else v * active


def lstm(xg: Tensor, state: LSTMState, weights: LSTMWeights, masks: Masks = Masks(),
         steps: Steps = Steps()) -> LSTMResult:
    from lstmkit.nn.cells import lstm_cell

    w = weights
    masks = Masks(*(None if m is None else m.detach() for m in masks))     # constants: no gradient
    coupled = w.coupled(state.c.shape[-1])
    per_step = {"xg": xg, "active": _active(xg, steps), "zh": masks.zh, "zc": masks.zc}
    per_step = {k: v for k, v in per_step.items() if v is not None}

    def step(carry, at):
        h, c = carry
        active = at.get("active")
        s = lstm_cell(at["xg"], h, c, None, w.w_hh, w_hr=w.w_hr, w_ci=w.w_ci, w_cf=w.w_cf, w_co=w.w_co,
                      ln_hh=w.ln_hh, ln_c_w=w.ln_c_w, ln_c_b=w.ln_c_b, coupled=coupled,
                      h_mask=masks.h_mask, zh=at.get("zh"), zc=at.get("zc"), eps=w.eps)
        acts = torch.cat([s.f, s.g, s.o] if coupled else [s.i, s.f, s.g, s.o], dim=-1)
        outputs = (_shown(s.h, active), _shown(acts, active), _shown(s.c, active))
        return (_keep(s.h, h, active), _keep(s.c, c, active)), outputs

    (h_n, c_n), (y, gates, cells) = _scan(step, (state.h, state.c), per_step, reverse=steps.reverse)
    return LSTMResult(y, h_n, c_n, gates.detach(), cells.detach())


def gru(xg: Tensor, h0: Tensor, weights: GRUWeights, steps: Steps = Steps()) -> GRUResult:
    from lstmkit.nn.cells import gru_cell

    per_step = {"xg": xg, "active": _active(xg, steps)}
    per_step = {k: v for k, v in per_step.items() if v is not None}

    def step(h, at):
        active = at.get("active")
        h_new, gates = gru_cell(at["xg"], h, None, weights.w_hh, None, weights.b_hh)
        return _keep(h_new, h, active), (_shown(h_new, active), _shown(gates, active))

    h_n, (y, gates) = _scan(step, h0, per_step, reverse=steps.reverse)
    return GRUResult(y, h_n, gates.detach())


def rnn(xg: Tensor, h0: Tensor, weights: RNNWeights, steps: Steps = Steps()) -> RNNResult:
    from lstmkit.nn.cells import rnn_cell

    per_step = {"xg": xg, "active": _active(xg, steps)}
    per_step = {k: v for k, v in per_step.items() if v is not None}

    def step(h, at):
        active = at.get("active")
        h_new = rnn_cell(at["xg"], h, None, weights.w_hh, nonlinearity=weights.nonlinearity)
        return _keep(h_new, h, active), _shown(h_new, active)

    h_n, y = _scan(step, h0, per_step, reverse=steps.reverse)
    return RNNResult(y, h_n)
