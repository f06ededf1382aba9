"""The LSTM recurrence with back-propagation through time written out by hand.

Forward runs ``lstmkit.nn.cells.lstm_cell`` (with the input part already in ``xg``) step by step,
writing every step straight into preallocated (T, B, ·) buffers. Backward walks the steps in
the opposite order carrying dh, dc; each step is a few whole-tensor products plus one matrix
product ``d_gates @ w_hh``. Everything that depends only on forward values (the activations'
derivatives and their products) is computed for all steps at once before the loop, and the
weight gradients are one matrix product (or one sum) over all steps after it. Saved memory is
O(T·B·H) and the cost is linear in T.

Gradient of one step (no variants; G' the derivative of an activation):
    dh     = dh_next + dy_t
    dc'    = dc_next + dh ⊙ o ⊙ (1 - tanh²c')          the memory hears the output
    da_o   = dh ⊙ tanh(c') ⊙ o(1-o)
    da_i   = dc' ⊙ g ⊙ i(1-i),  da_f = dc' ⊙ c ⊙ f(1-f),  da_g = dc' ⊙ i ⊙ (1-g²)
    dc     = dc' ⊙ f                                   the forget gate scales memory's gradient
    dh_prev = da @ w_hh
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmkit.engines.contract import LSTMResult, LSTMState, LSTMWeights, Masks, Steps
from lstmkit.engines.bptt.common import (StepPlan, carry_inactive, check_state, make_plan,
                                               new_buffer, outputs_from_states, state_buffer)
from lstmkit.engines.bptt.lstm_backward import lstm_backward


def _all_rows(v: Tensor) -> Tensor:
    return v


def lstm(xg: Tensor, state: LSTMState, weights: LSTMWeights, masks: Masks = Masks(),
         steps: Steps = Steps()) -> LSTMResult:
    """One layer-direction of an LSTM (the contract of ``lstmkit.engines.contract``).

    Returns y (T, B, P), h_n (B, P), c_n (B, H), gates (T, B, G·H) activations [i,] f, g, o and
    cells (T, B, H), the cell state after each step; gates and cells are for reading, not
    differentiable. The masks are constants: no gradient flows into them.
    """
    count, batch, rows = xg.shape
    h0, c0 = state
    w = weights
    hidden, out = c0.shape[-1], h0.shape[-1]
    if rows not in (3 * hidden, 4 * hidden):
        raise ValueError(f"xg must have 4·H = {4 * hidden} (or 3·H = {3 * hidden} coupled) features, got {rows}")
    coupled = rows == 3 * hidden
    check_state("h0", h0, (batch, out), xg)
    check_state("c0", c0, (batch, hidden), xg)
    check_state("w_hh", w.w_hh, (rows, out), xg)
    if w.w_hr is not None:
        check_state("w_hr", w.w_hr, (out, hidden), xg)
    elif out != hidden:
        raise ValueError(f"h0 has {out} features but c0 {hidden}: a projection needs w_hr of shape ({out}, {hidden})")
    if coupled and w.w_ci is not None:
        raise ValueError("coupled gates have no input gate, so w_ci must be None")
    if (w.w_cf is None) != (w.w_ci is None) and not coupled:
        raise ValueError("peepholes w_ci and w_cf come together (w_ci only is None when the gates are coupled)")
    for name in ("w_ci", "w_cf", "w_co", "ln_c_w", "ln_c_b"):
        if getattr(w, name) is not None:
            check_state(name, getattr(w, name), (hidden,), xg)
    if (w.ln_c_w is None) != (w.ln_c_b is None):
        raise ValueError("the cell layer norm needs both ln_c_w and ln_c_b")
    if w.ln_hh is not None:
        check_state("ln_hh", w.ln_hh, (rows,), xg)
    if masks.h_mask is not None:
        check_state("h_mask", masks.h_mask, (batch, out), xg)
    if masks.zh is not None:
        check_state("zh", masks.zh, (count, batch, out), xg)
    if masks.zc is not None:
        check_state("zc", masks.zc, (count, batch, hidden), xg)
    constants = [None if m is None else m.detach() for m in masks]
    plan = make_plan(count, batch, steps.batch_sizes, steps.reverse)
    return LSTMResult(*_LSTMRecurrence.apply(xg, h0, c0, *w[:-1], *constants, plan, float(w.eps)))


class _LSTMRecurrence(torch.autograd.Function):

    @staticmethod
    def forward(ctx, xg, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b,
                h_mask, zh, zc, plan: StepPlan, eps: float):
        steps, batch, rows = xg.shape
        hidden = c0.shape[-1]
        n_gates = rows // hidden
        coupled = n_gates == 3
        hs = state_buffer(h0, steps)                                  # (T+1, B, P) h each step reads
        cs = state_buffer(c0, steps)                                  # (T+1, B, H)
        gates = new_buffer(plan, (steps, batch, rows), xg)            # (T, B, G·H) activations
        gates4 = gates.view(steps, batch, n_gates, hidden)            # (T, B, G, H)
        tanh_c = new_buffer(plan, (steps, batch, hidden), xg)         # (T, B, H) tanh of the shown cell
        # without zoneout the new cell is the next state; with it, keep the un-zoned c' apart
        c_new_all = new_buffer(plan, (steps, batch, hidden), xg) if zc is not None else None
        if ln_hh is not None:
            hp_hat = new_buffer(plan, (steps, batch, rows), xg)       # (T, B, G·H) normalised h @ w_hh.T
            hp_rstd = new_buffer(plan, (steps, batch, 1), xg)
        if ln_c_w is not None:
            c_mean = new_buffer(plan, (steps, batch, 1), xg)          # (T, B, 1) statistics of c'
            c_rstd = new_buffer(plan, (steps, batch, 1), xg)
        w_hh_t = w_hh.t()                                             # (P, G·H)
        w_hr_t = None if w_hr is None else w_hr.t()                   # (H, P)
        # peepholes of i and f as one (2, H) gain so both gates take the old cell in one op
        w_c_if = torch.stack([w_ci, w_cf]) if w_cf is not None and not coupled else None
        # per-step views made once (indexing in the loop costs more than the small ops themselves)
        h_at, c_at, x_at, a_at, tc_at = (v.unbind(0) for v in (hs, cs, xg, gates, tanh_c))
        gate_at = [v.unbind(0) for v in gates4.unbind(2)]             # G lists of (B, H)
        ab_at = gates4[:, :, :2].unbind(0)                            # (B, 2, H): i, f together
        c_new_at = c_new_all.unbind(0) if zc is not None else c_at[1:]
        zh_at, zc_at = (None if z is None else z.unbind(0) for z in (zh, zc))
        for k, (t, n) in enumerate(plan.steps):
            rows_ = _all_rows if n == batch else (lambda v, n=n: v[:n])
            h_prev, c_prev = rows_(h_at[k]), rows_(c_at[k])           # (n, P), (n, H)
            h_in = h_prev if h_mask is None else h_prev * h_mask[:n]
            a = rows_(a_at[t])                                        # (n, G·H) pre-activations, then gates
            if ln_hh is None:
                torch.addmm(rows_(x_at[t]), h_in, w_hh_t, out=a)
            else:
                hp, _, rstd = torch.native_layer_norm(h_in @ w_hh_t, (rows,), None, None, eps)
                hp_hat[t, :n] = hp
                hp_rstd[t, :n] = rstd
                torch.addcmul(rows_(x_at[t]), hp, ln_hh, out=a)
            c_new = rows_(c_new_at[k if zc is None else t])           # (n, H) c' (= next state w/o zoneout)
            if coupled:
                f, g, o = (rows_(v[t]) for v in gate_at)
                if w_cf is not None:
                    f.addcmul_(w_cf, c_prev)
                f.sigmoid_()
                g.tanh_()
                torch.addcmul(g, f, c_prev - g, out=c_new)            # f⊙c + (1-f)⊙g
            else:
                i, f, g, o = (rows_(v[t]) for v in gate_at)
                ab = rows_(ab_at[t])                                  # (n, 2, H) i and f
                if w_c_if is not None:
                    ab.addcmul_(w_c_if, c_prev.unsqueeze(1))
                ab.sigmoid_()
                g.tanh_()
                torch.mul(f, c_prev, out=c_new).addcmul_(i, g)        # c' = f⊙c + i⊙g
            if w_co is not None:
                o.addcmul_(w_co, c_new)
            o.sigmoid_()
            tc = rows_(tc_at[t])
            if ln_c_w is None:
                torch.tanh(c_new, out=tc)
            else:
                shown, mean, rstd = torch.native_layer_norm(c_new, (hidden,), ln_c_w, ln_c_b, eps)
                c_mean[t, :n] = mean
                c_rstd[t, :n] = rstd
                torch.tanh(shown, out=tc)
            h_next = rows_(h_at[k + 1])
            if w_hr is None and zh is None:
                torch.mul(o, tc, out=h_next)
            else:
                h_new = o * tc                                        # (n, H)
                if w_hr is not None:
                    h_new = h_new @ w_hr_t                            # (n, P)
                if zh is None:
                    h_next.copy_(h_new)
                else:                                                 # h = h' + zh⊙(h_prev - h')
                    torch.addcmul(h_new, rows_(zh_at[t]), h_prev - h_new, out=h_next)
            if zc is not None:
                torch.addcmul(c_new, rows_(zc_at[t]), c_prev - c_new, out=rows_(c_at[k + 1]))
            if n < batch:
                carry_inactive(hs, k, n)
                carry_inactive(cs, k, n)

        y = outputs_from_states(hs, plan)                             # (T, B, P)
        cells = outputs_from_states(cs, plan)                         # (T, B, H)
        h_n, c_n = hs[steps].clone(), cs[steps].clone()
        ctx.mark_non_differentiable(gates, cells)
        ctx.set_materialize_grads(False)
        ctx.plan, ctx.eps = plan, eps
        if any(ctx.needs_input_grad):
            optional = [c_new_all, *((hp_hat, hp_rstd) if ln_hh is not None else (None, None)),
                        *((c_mean, c_rstd) if ln_c_w is not None else (None, None))]
            ctx.save_for_backward(hs, cs, gates, tanh_c, *optional, w_hh, w_hr, w_ci, w_cf, w_co,
                                  ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc)
        return y, h_n, c_n, gates, cells

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, dc_n, _d_gates, _d_cells):
        return lstm_backward(ctx, dy, dh_n, dc_n)
