"""The GRU and RNN recurrences on the Triton kernels, with their autograd (as ``lstm_autograd``:
one launch forward, one backward, weight gradients as one matrix product over every step)."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from lstmkit.engines.bptt.common import StepPlan, in_time_order, outputs_from_states, state_buffer, weight_grad
from lstmkit.engines.triton.launch import Launch
from lstmkit.engines.triton.lstm_autograd import F32, dh_buffer


def _options(plan: StepPlan, **switch: bool) -> dict[str, bool]:
    return {"PACKED": plan.packed, "REVERSE": plan.reverse, **switch}


class GRUFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, xg, h0, w_hh, b_hh, plan: StepPlan, launch: Launch):
        steps, batch, rows = xg.shape
        hs = state_buffer(h0.to(F32), steps)                                   # (T+1, B, H)
        gates = xg.new_empty((steps, batch, rows), dtype=F32)                  # (T, B, 3H) r, z, n
        hn = xg.new_empty((steps, batch, rows // 3), dtype=F32)                # (T, B, H) W_hn h + b_hn
        options = _options(plan, HAS_BIAS=b_hh is not None)
        launch.run("gru_forward", batch, [xg, hs, gates, hn, launch.counter(batch), launch.sizes(plan, steps),
                                          w_hh, b_hh, steps, batch], options, resident="resident")
        dtype = xg.dtype
        y = outputs_from_states(hs, plan).to(dtype)
        record = gates.to(dtype, copy=True)
        ctx.mark_non_differentiable(record)
        ctx.plan, ctx.launch, ctx.options, ctx.dtype = plan, launch, options, dtype
        ctx.save_for_backward(hs, gates, hn, w_hh, b_hh)
        return y, hs[steps].to(dtype, copy=True), record

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, _d_gates):
        hs, gates, hn, w_hh, b_hh = ctx.saved_tensors
        steps, batch, _ = gates.shape
        dy = dy.to(F32).contiguous()
        dh = dh_buffer(dh_n, steps)                                            # (T+1, B, H)
        dxg, dhp = torch.empty_like(gates), torch.empty_like(gates)            # (T, B, 3H)
        launch = ctx.launch
        launch.run("gru_backward", batch, [dy, dh, dxg, dhp, launch.counter(batch), launch.sizes(ctx.plan, steps),
                                           hs, gates, hn, w_hh, steps, batch], ctx.options, resident="resident_back")
        d_w_hh = weight_grad(dhp, in_time_order(hs[:-1], ctx.plan)).to(w_hh.dtype)
        d_b_hh = None if b_hh is None else dhp.sum((0, 1)).to(b_hh.dtype)
        return dxg.to(ctx.dtype), dh[0].to(ctx.dtype), d_w_hh, d_b_hh, None, None


class RNNFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, xg, h0, w_hh, relu: bool, plan: StepPlan, launch: Launch):
        steps, batch, _ = xg.shape
        hs = state_buffer(h0.to(F32), steps)                                   # (T+1, B, H)
        options = _options(plan, RELU=relu)
        launch.run("rnn_forward", batch, [xg, hs, launch.counter(batch), launch.sizes(plan, steps), w_hh,
                                          steps, batch], options, resident="resident")
        ctx.plan, ctx.launch, ctx.options, ctx.dtype = plan, launch, options, xg.dtype
        ctx.save_for_backward(hs, w_hh)
        return outputs_from_states(hs, plan).to(xg.dtype), hs[steps].to(xg.dtype, copy=True)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n):
        hs, w_hh = ctx.saved_tensors
        steps, batch = hs.shape[0] - 1, hs.shape[1]
        dy = dy.to(F32).contiguous()
        dh = dh_buffer(dh_n, steps)                                            # (T+1, B, H)
        dxg = torch.empty_like(dy)                                             # (T, B, H)
        launch = ctx.launch
        launch.run("rnn_backward", batch, [dy, dh, dxg, launch.counter(batch), launch.sizes(ctx.plan, steps),
                                           hs, w_hh, steps, batch], ctx.options, resident="resident_back")
        d_w_hh = weight_grad(dxg, in_time_order(hs[:-1], ctx.plan)).to(w_hh.dtype)
        return dxg.to(ctx.dtype), dh[0].to(ctx.dtype), d_w_hh, None, None, None
