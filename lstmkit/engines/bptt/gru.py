"""The GRU recurrence (torch.nn.GRU's, gate order r, z, n) with back-propagation through time by hand.

Forward, per step, as ``lstmkit.nn.cells.gru_cell`` with the input part in xg (incl. b_ih):
    hp = h @ w_hh.T + b_hh;  r = σ(x_r + hp_r);  z = σ(x_z + hp_z);  n = tanh(x_n + r ⊙ hp_n)
    h' = (1 - z) ⊙ n + z ⊙ h
Backward, with dh the gradient reaching h' (carried + output):
    da_n = dh ⊙ (1-z)(1-n²);  da_z = dh ⊙ (h - n) z(1-z);  da_r = da_n ⊙ hp_n ⊙ r(1-r)
    d xg = [da_r, da_z, da_n];  d hp = [da_r, da_z, da_n ⊙ r];  dh_prev = dh ⊙ z + d hp @ w_hh
Every factor multiplying dh depends on forward values only, so it is computed for all steps at
once; the loop is one product, one mul and one addmm per step.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmkit.engines.contract import GRUResult, GRUWeights, Steps
from lstmkit.engines.bptt.common import (StepPlan, carry_inactive, check_state, in_time_order,
                                               make_plan, new_buffer, outputs_from_states, state_buffer,
                                               weight_grad)

XG, H0, W_HH, B_HH = range(4)


def _all_rows(v: Tensor) -> Tensor:
    return v


def gru(xg: Tensor, h0: Tensor, weights: GRUWeights, steps: Steps = Steps()) -> GRUResult:
    """One layer-direction of a GRU: xg (T, B, 3H) = x @ w_ih.T + b_ih, h0 (B, H), w_hh (3H, H).

    Returns y (T, B, H), h_n (B, H) and gates (T, B, 3H) = r, z, n (for reading, not differentiable).
    """
    w_hh, b_hh = weights
    count, batch, rows = xg.shape
    hidden = h0.shape[-1] if isinstance(h0, Tensor) else -1
    if rows != 3 * hidden:
        raise ValueError(f"xg must have 3·H = {3 * hidden} features (H from h0), got {rows}")
    check_state("h0", h0, (batch, hidden), xg)
    check_state("w_hh", w_hh, (rows, hidden), xg)
    if b_hh is not None:
        check_state("b_hh", b_hh, (rows,), xg)
    plan = make_plan(count, batch, steps.batch_sizes, steps.reverse)
    return GRUResult(*_GRURecurrence.apply(xg, h0, w_hh, b_hh, plan))


class _GRURecurrence(torch.autograd.Function):

    @staticmethod
    def forward(ctx, xg, h0, w_hh, b_hh, plan: StepPlan):
        steps, batch, rows = xg.shape
        hidden = h0.shape[-1]
        hs = state_buffer(h0, steps)                                 # (T+1, B, H)
        gates = new_buffer(plan, (steps, batch, rows), xg)           # (T, B, 3H) r, z, n
        hp_all = new_buffer(plan, (steps, batch, rows), xg)          # (T, B, 3H) h @ w_hh.T + b_hh
        w_hh_t = w_hh.t()                                            # (H, 3H)
        # per-step views made once: indexing inside the loop costs more than the small ops
        h_at, hp_at = hs.unbind(0), hp_all.unbind(0)
        rz_at, x_rz_at, x_n_at = gates[..., :2 * hidden].unbind(0), xg[..., :2 * hidden].unbind(0), \
            xg[..., 2 * hidden:].unbind(0)
        hp_rz_at, hp_n_at = hp_all[..., :2 * hidden].unbind(0), hp_all[..., 2 * hidden:].unbind(0)
        r_at, z_at, n_at = (v.unbind(0) for v in gates.view(steps, batch, 3, hidden).unbind(2))
        for k, (t, n) in enumerate(plan.steps):
            rows_ = _all_rows if n == batch else (lambda v, n=n: v[:n])
            h_prev, hp = rows_(h_at[k]), rows_(hp_at[t])
            if b_hh is None:
                torch.mm(h_prev, w_hh_t, out=hp)
            else:
                torch.addmm(b_hh, h_prev, w_hh_t, out=hp)
            torch.add(rows_(x_rz_at[t]), rows_(hp_rz_at[t]), out=rows_(rz_at[t])).sigmoid_()
            r, z, n_gate = rows_(r_at[t]), rows_(z_at[t]), rows_(n_at[t])
            torch.addcmul(rows_(x_n_at[t]), r, rows_(hp_n_at[t]), out=n_gate).tanh_()
            torch.addcmul(n_gate, z, h_prev - n_gate, out=rows_(h_at[k + 1]))   # (1-z)⊙n + z⊙h
            if n < batch:
                carry_inactive(hs, k, n)
        y = outputs_from_states(hs, plan)                            # (T, B, H)
        h_n = hs[steps].clone()
        ctx.mark_non_differentiable(gates)
        ctx.set_materialize_grads(False)
        ctx.plan = plan
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(hs, gates, hp_all, w_hh)
        return y, h_n, gates

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, _d_gates):
        plan, need = ctx.plan, ctx.needs_input_grad
        hs, gates, hp_all, w_hh = ctx.saved_tensors
        steps, batch, rows = gates.shape
        hidden = rows // 3
        h_prev = in_time_order(hs[:-1], plan)                        # (T, B, H)
        r, z, n_gate = gates.view(steps, batch, 3, hidden).unbind(2)
        hp_n = hp_all[:, :, 2 * hidden:]
        p_n = (1 - z) * (1 - n_gate * n_gate)                        # da_n = dh ⊙ p_n
        p_z = (h_prev - n_gate) * z * (1 - z)                        # da_z = dh ⊙ p_z
        p_r = p_n * hp_n * r * (1 - r)                               # da_r = dh ⊙ p_r
        p_hp = torch.stack([p_r, p_z, p_n * r], 2)                   # (T, B, 3, H): d hp = dh ⊗ p_hp
        del p_r, p_z

        d_h = new_buffer(plan, (steps, batch, hidden), gates)        # (T, B, H) dh reaching each h'
        d_hp = new_buffer(plan, (steps, batch, rows), gates)         # (T, B, 3H)
        d_hp3 = d_hp.view(steps, batch, 3, hidden)
        dh = dh_n.clone() if dh_n is not None else hs.new_zeros(batch, hidden)
        d_h_at, d_hp_at, d_hp3_at, p_hp_at = d_h.unbind(0), d_hp.unbind(0), d_hp3.unbind(0), p_hp.unbind(0)
        z_at = z.unbind(0)
        dy_at = None if dy is None else dy.unbind(0)
        for k in range(steps - 1, -1, -1):
            t, n = plan.steps[k]
            rows_ = _all_rows if n == batch else (lambda v, n=n: v[:n])
            d_t, dh_k = rows_(d_h_at[t]), rows_(dh)
            if dy is None:
                d_t.copy_(dh_k)
            else:
                torch.add(dh_k, rows_(dy_at[t]), out=d_t)
            torch.mul(d_t.unsqueeze(1), rows_(p_hp_at[t]), out=rows_(d_hp3_at[t]))
            torch.addmm(d_t * rows_(z_at[t]), rows_(d_hp_at[t]), w_hh, out=dh_k)

        d_xg = None
        if need[XG]:                                                 # like d hp, but n's part before r
            d_xg = torch.cat([d_hp[:, :, :2 * hidden], d_h * p_n], -1)
        return (d_xg, dh if need[H0] else None,
                weight_grad(d_hp, h_prev) if need[W_HH] else None,
                d_hp.sum((0, 1)) if need[B_HH] else None, None)
