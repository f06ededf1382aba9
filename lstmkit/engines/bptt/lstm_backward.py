"""Back-propagation through time for ``lstm.py``'s forward (see the formulas in its docstring).

Three phases: (1) coefficients that depend only on forward values, for all steps at once;
(2) the sequential loop, carrying dh (B, P) and dc (B, H) backwards, one matrix product a step;
(3) weight gradients as one matrix product or one sum over every step and row.
"""
from __future__ import annotations

import torch

from lstmkit.engines.bptt.common import in_time_order, layer_norm_backward, new_buffer, weight_grad

XG, H0, C0, W_HH, W_HR, W_CI, W_CF, W_CO, LN_HH, LN_C_W, LN_C_B = range(11)
N_ARGS = 16  # forward's arguments: the 11 above, h_mask, zh, zc, plan, eps


def _all_rows(v):
    return v


def lstm_backward(ctx, dy, dh_n, dc_n):
    plan = ctx.plan
    (hs, cs, gates, tanh_c, c_new_all, hp_hat, hp_rstd, c_mean, c_rstd, w_hh, w_hr, w_ci, w_cf, w_co,
     ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc) = ctx.saved_tensors
    need = ctx.needs_input_grad
    steps, batch, rows = gates.shape
    hidden, out = tanh_c.shape[-1], hs.shape[-1]
    n_gates = rows // hidden
    coupled = n_gates == 3
    o_gate = n_gates - 1

    # (1) forward values in time order and the coefficients that turn dh, dc' into gate gradients
    h_prev = in_time_order(hs[:-1], plan)                       # (T, B, P) h each step read
    c_prev = in_time_order(cs[:-1], plan)                       # (T, B, H)
    c_new = c_new_all if zc is not None else in_time_order(cs[1:], plan)   # (T, B, H) un-zoned c'
    if coupled:
        f, g, o = gates.view(steps, batch, n_gates, hidden).unbind(2)
        i = 1 - f
    else:
        i, f, g, o = gates.view(steps, batch, n_gates, hidden).unbind(2)
    r_o = tanh_c * o * (1 - o)                                  # da_o = dh_raw ⊙ r_o
    p_c = o * (1 - tanh_c * tanh_c)                             # d(shown cell) = dh_raw ⊙ p_c
    if ln_c_w is not None:
        c_hat = (c_new - c_mean) * c_rstd                       # (T, B, H) normalised c'
        p_c_hat = p_c * ln_c_w                                  # d ĉ = dh_raw ⊙ p_c_hat
        r_co = None if w_co is None else r_o * w_co             # the o peephole's way back into c'
    else:
        p_c_total = p_c if w_co is None else p_c + r_o * w_co   # dc' += dh_raw ⊙ p_c_total
    d_f = f * (1 - f)
    d_g = 1 - g * g
    # q: dc' ⊗ q = gradients of the pre-activations before o; (T, B, G-1, H)
    if coupled:                                                 # c' = f⊙c + (1-f)⊙g
        q = torch.stack([(c_prev - g) * d_f, i * d_g], 2)
        f_c = f if w_cf is None else f + w_cf * q[:, :, 0]      # dc = dc' ⊙ f_c
    else:
        q = torch.stack([g * i * (1 - i), c_prev * d_f, i * d_g], 2)
        f_c = f if w_cf is None else f + w_ci * q[:, :, 0] + w_cf * q[:, :, 1]
    del d_f, d_g
    zh_new = None if zh is None else 1 - zh                     # share of h' in the next h
    zc_new = None if zc is None else 1 - zc

    # (2) the loop over steps, latest first
    d_a = new_buffer(plan, (steps, batch, rows), gates)         # (T, B, G·H) = d xg
    d_a4 = d_a.view(steps, batch, n_gates, hidden)
    d_hp = new_buffer(plan, (steps, batch, rows), gates) if ln_hh is not None else d_a  # d(h @ w_hh.T)
    d_h_new = new_buffer(plan, (steps, batch, out), gates) if w_hr is not None and need[W_HR] else None
    keep_d_raw = ln_c_w is not None and (need[LN_C_W] or need[LN_C_B])
    d_h_raw = new_buffer(plan, (steps, batch, hidden), gates) if keep_d_raw else None
    dh = dh_n.clone() if dh_n is not None else hs.new_zeros(batch, out)      # (B, P) d state
    dc = dc_n.clone() if dc_n is not None else cs.new_zeros(batch, hidden)   # (B, H)
    # per-time views made once: indexing inside the loop would cost more than the small ops
    q_at, p_at, r_at, f_at = (v.unbind(0) for v in (q, p_c_total if ln_c_w is None else p_c_hat, r_o, f_c))
    d_a_at, d_o_at, d_q_at = d_a.unbind(0), d_a4[:, :, o_gate].unbind(0), d_a4[:, :, :o_gate].unbind(0)
    dy_at = None if dy is None else dy.unbind(0)
    for k in range(steps - 1, -1, -1):
        t, n = plan.steps[k]
        rows_ = _all_rows if n == batch else (lambda v, n=n: v[:n])
        dh_k, dc_next = rows_(dh), rows_(dc)                    # views of the carried gradients
        dh_next = dh_k if dy is None else dh_k + rows_(dy_at[t])
        dh_new = dh_next if zh is None else dh_next * zh_new[t, :n]
        if w_hr is not None:
            if d_h_new is not None:
                d_h_new[t, :n] = dh_new
            dh_raw = dh_new @ w_hr                              # (n, H) back through the projection
        else:
            dh_raw = dh_new
        if d_h_raw is not None:
            d_h_raw[t, :n] = dh_raw
        dc_in = dc_next if zc is None else dc_next * zc_new[t, :n]
        if ln_c_w is None:
            dc_new = torch.addcmul(dc_in, dh_raw, rows_(p_at[t]))
        else:
            dc_new = dc_in + layer_norm_backward(dh_raw * rows_(p_at[t]), c_hat[t, :n], c_rstd[t, :n])
            if r_co is not None:
                dc_new.addcmul_(dh_raw, r_co[t, :n])
        torch.mul(dh_raw, rows_(r_at[t]), out=rows_(d_o_at[t]))
        torch.mul(dc_new.unsqueeze(1), rows_(q_at[t]), out=rows_(d_q_at[t]))
        if zc is None:
            torch.mul(dc_new, rows_(f_at[t]), out=dc_next)
        else:                                                   # zoneout keeps zc of the old cell
            torch.addcmul(dc_next * zc[t, :n], dc_new, rows_(f_at[t]), out=dc_next)
        if ln_hh is None:
            dhp = rows_(d_a_at[t])
        else:
            dhp = layer_norm_backward(rows_(d_a_at[t]) * ln_hh, hp_hat[t, :n], hp_rstd[t, :n])
            d_hp[t, :n] = dhp
        if h_mask is None and zh is None:
            torch.mm(dhp, w_hh, out=dh_k)
        elif h_mask is None:
            torch.addmm(dh_next * zh[t, :n], dhp, w_hh, out=dh_k)
        elif zh is None:
            torch.mul(dhp @ w_hh, h_mask[:n], out=dh_k)
        else:
            torch.addcmul(dh_next * zh[t, :n], dhp @ w_hh, h_mask[:n], out=dh_k)

    # (3) parameters: one product or one sum over all steps
    grads = [None] * N_ARGS
    grads[XG] = d_a if need[XG] else None
    grads[H0] = dh if need[H0] else None
    grads[C0] = dc if need[C0] else None
    if need[W_HH]:
        grads[W_HH] = weight_grad(d_hp, h_prev if h_mask is None else h_prev * h_mask)
    if need[W_HR]:
        grads[W_HR] = weight_grad(d_h_new, o * tanh_c)
    if need[W_CI]:
        grads[W_CI] = (d_a4[:, :, 0] * c_prev).sum((0, 1))
    if need[W_CF]:
        grads[W_CF] = (d_a4[:, :, 0 if coupled else 1] * c_prev).sum((0, 1))
    if need[W_CO]:
        grads[W_CO] = (d_a4[:, :, o_gate] * c_new).sum((0, 1))
    if need[LN_HH]:
        grads[LN_HH] = (d_a * hp_hat).sum((0, 1))
    if keep_d_raw:
        d_shown = d_h_raw * p_c                                 # (T, B, H) d(LN(c')·γ + β)
        grads[LN_C_W] = (d_shown * c_hat).sum((0, 1)) if need[LN_C_W] else None
        grads[LN_C_B] = d_shown.sum((0, 1)) if need[LN_C_B] else None
    return tuple(grads)
