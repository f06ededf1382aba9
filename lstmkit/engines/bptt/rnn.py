"""The Elman RNN recurrence (tanh or relu) with back-propagation through time by hand.

Forward: h' = act(xg_t + h @ w_hh.T), xg including both biases.
Backward: da = (dh_next + dy_t) ⊙ act'(h'),  dh_prev = da @ w_hh,  dW_hh = Σ_t da_tᵀ h_t.
act' is read off the output: 1 - h'² for tanh, [h' > 0] for relu (torch's convention at 0).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmkit.engines.contract import RNNResult, RNNWeights, Steps
from lstmkit.engines.bptt.common import (StepPlan, carry_inactive, check_state, in_time_order,
                                               make_plan, new_buffer, outputs_from_states, state_buffer,
                                               weight_grad)

NONLINEARITIES = ("tanh", "relu")


def rnn(xg: Tensor, h0: Tensor, weights: RNNWeights, steps: Steps = Steps()) -> RNNResult:
    """One layer-direction of an RNN: xg (T, B, H) incl. both biases, h0 (B, H), w_hh (H, H).

    Returns y (T, B, H) and h_n (B, H).
    """
    w_hh, nonlinearity = weights
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    count, batch, hidden = xg.shape
    check_state("h0", h0, (batch, hidden), xg)
    check_state("w_hh", w_hh, (hidden, hidden), xg)
    plan = make_plan(count, batch, steps.batch_sizes, steps.reverse)
    return RNNResult(*_RNNRecurrence.apply(xg, h0, w_hh, nonlinearity, plan))


class _RNNRecurrence(torch.autograd.Function):

    @staticmethod
    def forward(ctx, xg, h0, w_hh, nonlinearity: str, plan: StepPlan):
        steps = xg.shape[0]
        hs = state_buffer(h0, steps)                                 # (T+1, B, H)
        w_hh_t = w_hh.t()
        tanh = nonlinearity == "tanh"
        h_at, x_at = hs.unbind(0), xg.unbind(0)                      # per-step views, made once
        for k, (t, n) in enumerate(plan.steps):
            if n == hs.shape[1]:
                h_next = torch.addmm(x_at[t], h_at[k], w_hh_t, out=h_at[k + 1])
            else:
                h_next = torch.addmm(x_at[t][:n], h_at[k][:n], w_hh_t, out=h_at[k + 1][:n])
                carry_inactive(hs, k, n)
            h_next.tanh_() if tanh else h_next.relu_()
        y = outputs_from_states(hs, plan)                            # (T, B, H)
        h_n = hs[steps].clone()
        ctx.set_materialize_grads(False)
        ctx.plan, ctx.tanh = plan, tanh
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(hs, w_hh)
        return y, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n):
        plan, need = ctx.plan, ctx.needs_input_grad
        hs, w_hh = ctx.saved_tensors
        steps, batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        h_new = in_time_order(hs[1:], plan)                          # (T, B, H)
        d_act = 1 - h_new * h_new if ctx.tanh else (h_new > 0).to(h_new.dtype)
        d_a = new_buffer(plan, (steps, batch, hidden), hs)           # (T, B, H) = d xg
        dh = dh_n.clone() if dh_n is not None else hs.new_zeros(batch, hidden)
        d_a_at, d_act_at = d_a.unbind(0), d_act.unbind(0)            # per-step views, made once
        dy_at = None if dy is None else dy.unbind(0)
        for k in range(steps - 1, -1, -1):
            t, n = plan.steps[k]
            full = n == batch
            dh_k, d_a_t = (dh, d_a_at[t]) if full else (dh[:n], d_a_at[t][:n])
            dh_t = dh_k if dy is None else dh_k + (dy_at[t] if full else dy_at[t][:n])
            torch.mul(dh_t, d_act_at[t] if full else d_act_at[t][:n], out=d_a_t)
            torch.mm(d_a_t, w_hh, out=dh_k)
        return (d_a if need[0] else None, dh if need[1] else None,
                weight_grad(d_a, in_time_order(hs[:-1], plan)) if need[2] else None, None, None)
