"""The LSTM recurrence on the Triton kernels, with its autograd.

Forward and backward are one launch each (``kernels/lstm_forward.py``, ``kernels/lstm_backward.py``);
the step loop runs inside them. Every buffer is float32 whatever the layer's dtype: the states
carried from step to step, the gate records the backward reads. Weight gradients are sums over
all steps of values the backward left in those buffers: one matrix product (or one sum) each here.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmkit.engines.bptt.common import (StepPlan, in_time_order, outputs_from_states, state_buffer,
                                         weight_grad)
from lstmkit.engines.triton.launch import Launch, flags

F32 = torch.float32


class Saved(NamedTuple):
    """What the forward leaves for the backward, float32, None where the variant is off."""

    hs: Tensor                   # (T+1, B, P) h in processing order, slot 0 = h0
    cs: Tensor                   # (T+1, B, H)
    gates: Tensor                # (T, B, G·H) activations, zero where a row is inactive
    c_new: Tensor | None         # (T, B, H) un-zoned c' (zoneout of c)
    hp: Tensor | None            # (T, B, G·H) h @ W_hh^T before its layer norm
    stats_h: Tensor | None       # (T, B, 2) mean, 1/std of hp
    stats_c: Tensor | None       # (T, B, 2) mean, 1/std of c'
    h_raw: Tensor | None         # (T, B, H) o ⊙ tanh(shown cell) before the projection


def _buffer(on: bool, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    return like.new_empty(shape, dtype=F32) if on else None


class LSTMFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, xg, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc,
                plan: StepPlan, eps: float, launch: Launch):
        steps, batch, rows = xg.shape
        hidden = c0.shape[-1]
        saved = Saved(state_buffer(h0.to(F32), steps), state_buffer(c0.to(F32), steps),
                      xg.new_empty((steps, batch, rows), dtype=F32),
                      _buffer(zc is not None, (steps, batch, hidden), xg),
                      _buffer(ln_hh is not None, (steps, batch, rows), xg),
                      _buffer(ln_hh is not None, (steps, batch, 2), xg),
                      _buffer(ln_c_w is not None, (steps, batch, 2), xg),
                      _buffer(w_hr is not None, (steps, batch, hidden), xg))
        weights = (w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b)
        options = flags(plan, peephole=w_cf is not None, ln_hh=ln_hh is not None, ln_c=ln_c_w is not None,
                        proj=w_hr is not None, h_mask=h_mask is not None, zoneout_h=zh is not None,
                        zoneout_c=zc is not None)
        partials = [launch.partials(batch) for _ in range(2)]
        launch.run("lstm_forward", batch,
                   [xg, saved.hs, saved.cs, saved.gates, saved.c_new, saved.hp, saved.stats_h, saved.stats_c,
                    saved.h_raw, *partials, launch.counter(batch), launch.sizes(plan, steps),
                    *weights, h_mask, zh, zc, steps, batch, float(eps)], options, resident="resident")

        dtype = xg.dtype
        y = outputs_from_states(saved.hs, plan).to(dtype)                      # (T, B, P)
        cells = outputs_from_states(saved.cs, plan).to(dtype)                  # (T, B, H)
        h_n, c_n = saved.hs[steps].to(dtype, copy=True), saved.cs[steps].to(dtype, copy=True)
        gates = saved.gates.to(dtype, copy=True)                               # (T, B, G·H)
        ctx.mark_non_differentiable(gates, cells)
        ctx.plan, ctx.launch, ctx.options, ctx.dtype = plan, launch, options, dtype
        ctx.save_for_backward(*saved, *weights, h_mask, zh, zc)
        return y, h_n, c_n, gates, cells

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, dc_n, _d_gates, _d_cells):
        saved, weights = Saved(*ctx.saved_tensors[:8]), ctx.saved_tensors[8:16]
        h_mask, zh, zc = ctx.saved_tensors[16:]
        steps, batch, rows = saved.gates.shape
        hidden = saved.cs.shape[-1]
        launch = ctx.launch
        dy = dy.to(F32).contiguous()                                           # (T, B, P)
        dh = dh_buffer(dh_n, steps)                                           # (T+1, B, P)
        dc = dc_n.to(F32, copy=True).contiguous()                              # (B, H): dc_n, then dc0
        dxg = saved.gates.new_empty(saved.gates.shape)                         # (T, B, G·H)
        dhp = _buffer(saved.hp is not None, saved.gates.shape, dxg)            # (T, B, G·H) through the norm
        dh_raw = _buffer(saved.stats_c is not None, (steps, batch, hidden), dxg)
        partials = [launch.partials(batch) for _ in range(2)]
        launch.run("lstm_backward", batch,
                   [dy, dh, dc, dxg, dhp, dh_raw, *partials, launch.counter(batch),
                    launch.sizes(ctx.plan, steps), saved.gates, saved.cs, saved.c_new, saved.hp, saved.stats_h,
                    saved.stats_c, *weights, h_mask, zh, zc, steps, batch], ctx.options, resident="resident_back")
        grads = _weight_grads(ctx.plan, saved, weights, h_mask, zh, dy, dh, dxg, dhp, dh_raw)
        dtype = ctx.dtype
        return (dxg.to(dtype), dh[0].to(dtype), dc.to(dtype), *grads, None, None, None, None, None, None)


def dh_buffer(dh_n: Tensor, steps: int) -> Tensor:
    """(T+1, B, P) gradients at the states: slot T holds dh_n, the backward fills T-1 .. 0."""
    dh = dh_n.new_empty((steps + 1,) + tuple(dh_n.shape), dtype=F32)
    dh[steps] = dh_n
    return dh


def _cast(grad: Tensor | None, like: Tensor | None) -> Tensor | None:
    return None if grad is None or like is None else grad.to(like.dtype)


def _weight_grads(plan: StepPlan, saved: Saved, weights, h_mask, zh, dy, dh, dxg, dhp, dh_raw) -> list:
    """Gradients of w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b: sums over every step."""
    w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b = weights
    steps, batch, rows = dxg.shape
    hidden = saved.cs.shape[-1]
    gates = rows // hidden
    h_prev = in_time_order(saved.hs[:-1], plan)                                # (T, B, P) h each step read
    c_prev = in_time_order(saved.cs[:-1], plan)                                # (T, B, H)
    c_new = saved.c_new if saved.c_new is not None else in_time_order(saved.cs[1:], plan)
    h_in = h_prev if h_mask is None else h_prev * h_mask
    d_a = dxg.view(steps, batch, gates, hidden)                                # (T, B, G, H)
    grads = dict.fromkeys(("w_hh", "w_hr", "w_ci", "w_cf", "w_co", "ln_hh", "ln_c_w", "ln_c_b"))
    grads["w_hh"] = weight_grad(dhp if dhp is not None else dxg, h_in)
    if w_cf is not None:
        grads["w_cf"] = (d_a[:, :, gates - 3] * c_prev).sum((0, 1))
        grads["w_co"] = (d_a[:, :, gates - 1] * c_new).sum((0, 1))
        if w_ci is not None:
            grads["w_ci"] = (d_a[:, :, 0] * c_prev).sum((0, 1))
    if ln_hh is not None:
        mean, rstd = saved.stats_h.unbind(-1)
        grads["ln_hh"] = (dxg * (saved.hp - mean[..., None]) * rstd[..., None]).sum((0, 1))
    if ln_c_w is not None:
        mean, rstd = saved.stats_c.unbind(-1)
        c_hat = (c_new - mean[..., None]) * rstd[..., None]                    # (T, B, H)
        o = saved.gates.view(steps, batch, gates, hidden)[:, :, gates - 1]
        tanh_c = torch.tanh(c_hat * ln_c_w.to(F32) + ln_c_b.to(F32))
        d_shown = dh_raw * o * (1 - tanh_c * tanh_c)                           # (T, B, H)
        grads["ln_c_w"], grads["ln_c_b"] = (d_shown * c_hat).sum((0, 1)), d_shown.sum((0, 1))
    if w_hr is not None:
        d_h_new = in_time_order(dh[1:], plan) + dy                             # (T, B, P)
        if zh is not None:
            d_h_new = d_h_new * (1 - zh.to(F32))
        grads["w_hr"] = weight_grad(d_h_new, saved.h_raw)                      # zero rows where inactive
    return [_cast(grads[name], w) for name, w in zip(grads, weights)]


__all__ = ["LSTMFunction"]
