"""LSTM backward: back-propagation through one layer-direction's steps in one launch, latest first.

Per step and tile (names of lstmkit.engines.bptt.lstm, whose formulas these are):
    dh = dh_carried + dy_t;  dh' = dh (1 - zh);  dh_raw = dh' [@ W_hr]
    dc' = dc (1 - zc) + dh_raw o (1 - tanh² shown) [through LN(c')] + da_o w_co
    da_o = dh_raw tanh(shown) o(1-o);  da_i = dc' g i(1-i);  da_f = dc' c f(1-f);  da_g = dc' i (1-g²)
    dc_prev = dc' f + w_ci da_i + w_cf da_f + zc dc
    dh_prev = (da [through LN] @ W_hh) ⊙ h_mask + zh dh
da is the gradient of xg; the weights' gradients are sums over all steps, left to one matrix
product each after the launch (``lstmkit.engines.triton.lstm``).
"""
import triton
import triton.language as tl

from .common import (back_tile_products, column_weights, dot, exchange_sums, load_rows, per_unit, program_start,
                     step_at, store_rows, sync, tanh, tile_columns)


@triton.jit
def _dh_next(dh_buf, dy, zh, t, k, rows, row_ok, live, cols, col_ok, B, P: tl.constexpr,
             ZONEOUT_H: tl.constexpr):
    """The gradient at the state h after step k (dh) and at the step's own h' (dh')."""
    dh = load_rows(dh_buf + (k + 1) * B * P, rows, row_ok, cols, col_ok, P, True)
    dh += tl.where(live, load_rows(dy + t * B * P, rows, row_ok, cols, col_ok, P, False), 0.0)
    dh_new = dh
    if ZONEOUT_H:
        dh_new = dh * (1.0 - load_rows(zh + t * B * P, rows, row_ok, cols, col_ok, P, False))
    return dh, dh_new


@triton.jit
def _dh_raw(dh_buf, dy, zh, w_hr, t, k, rows, row_ok, live, cols, col_ok, B, H: tl.constexpr,
            P: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
            PROJ: tl.constexpr, ZONEOUT_H: tl.constexpr, INTERPRET: tl.constexpr):
    """Gradient at o tanh(shown) for one tile of hidden units: dh', back through W_hr if projected."""
    if PROJ:
        acc = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
        for k0 in range(0, P, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            k_ok = kk < P
            _, dh_new = _dh_next(dh_buf, dy, zh, t, k, rows, row_ok, live, kk, k_ok, B, P, ZONEOUT_H)
            acc += dot(dh_new, column_weights(w_hr, 0, kk, k_ok, cols, col_ok, P, H), INTERPRET)
    else:
        _, acc = _dh_next(dh_buf, dy, zh, t, k, rows, row_ok, live, cols, col_ok, B, P, ZONEOUT_H)
    return acc


@triton.jit
def _saved(gates, cs, c_new_buf, stats_c, ln_c_w, ln_c_b, t, k, rows, row_ok, cols, col_ok, B,
           H: tl.constexpr, G: tl.constexpr, LN_C: tl.constexpr, ZONEOUT_C: tl.constexpr):
    """A tile's forward values at step k: gates, old and new cell, normalised c' and tanh(shown)."""
    record = gates + t * B * G * H
    f = load_rows(record, rows, row_ok, (G - 3) * H + cols, col_ok, G * H, False)
    g = load_rows(record, rows, row_ok, (G - 2) * H + cols, col_ok, G * H, False)
    o = load_rows(record, rows, row_ok, (G - 1) * H + cols, col_ok, G * H, False)
    if G == 4:
        i = load_rows(record, rows, row_ok, cols, col_ok, G * H, False)
    else:
        i = 1.0 - f
    c_prev = load_rows(cs + k * B * H, rows, row_ok, cols, col_ok, H, False)
    if ZONEOUT_C:
        c_new = load_rows(c_new_buf + t * B * H, rows, row_ok, cols, col_ok, H, False)
    else:
        c_new = load_rows(cs + (k + 1) * B * H, rows, row_ok, cols, col_ok, H, False)
    c_hat = c_new
    shown = c_new
    if LN_C:
        mean = tl.load(stats_c + (t * B + rows) * 2, mask=row_ok, other=0.0)[:, None]
        rstd = tl.load(stats_c + (t * B + rows) * 2 + 1, mask=row_ok, other=0.0)[:, None]
        c_hat = (c_new - mean) * rstd
        shown = c_hat * per_unit(ln_c_w, cols, col_ok) + per_unit(ln_c_b, cols, col_ok)
    return i, f, g, o, c_prev, c_hat, tanh(shown)


@triton.jit
def _gate_grads(dh_raw, dc_shown, i, f, g, o, tanh_c, c_prev, t, rows, row_ok, live, cols, col_ok,
                dc_buf, dxg, hp_buf, stats_h, w_ci, w_cf, w_co, ln_hh, zc, s1, s2, B, H: tl.constexpr,
                G: tl.constexpr, PEEPHOLE: tl.constexpr, LN_HH: tl.constexpr, ZONEOUT_C: tl.constexpr):
    """One tile's gate gradients (stored as d xg) and the cell gradient carried back; with a norm
    on h @ W_hh^T, its partial row sums Σd, Σd·p̂ (d = da · ln_hh)."""
    dc = load_rows(dc_buf, rows, row_ok, cols, col_ok, H, False)
    da_o = dh_raw * tanh_c * o * (1.0 - o)
    dc_new = dc_shown
    if ZONEOUT_C:
        z = load_rows(zc + t * B * H, rows, row_ok, cols, col_ok, H, False)
        dc_new += dc * (1.0 - z)
    else:
        dc_new += dc
    if PEEPHOLE:
        dc_new += da_o * per_unit(w_co, cols, col_ok)
    dc_new = tl.where(live, dc_new, 0.0)
    da_o = tl.where(live, da_o, 0.0)
    da_i = dc_new * g * i * (1.0 - i)
    if G == 4:
        da_f = dc_new * c_prev * f * (1.0 - f)
    else:
        da_f = dc_new * (c_prev - g) * f * (1.0 - f)
    da_g = dc_new * i * (1.0 - g * g)
    dc_prev = dc_new * f
    if PEEPHOLE:
        dc_prev += da_f * per_unit(w_cf, cols, col_ok)
        if G == 4:
            dc_prev += da_i * per_unit(w_ci, cols, col_ok)
    if ZONEOUT_C:
        dc_prev += dc * z
    store_rows(dc_buf, tl.where(live, dc_prev, dc), rows, row_ok, cols, col_ok, H)
    d_t = dxg + t * B * G * H
    if G == 4:
        store_rows(d_t, da_i, rows, row_ok, cols, col_ok, G * H)
    store_rows(d_t + (G - 3) * H, da_f, rows, row_ok, cols, col_ok, G * H)
    store_rows(d_t + (G - 2) * H, da_g, rows, row_ok, cols, col_ok, G * H)
    store_rows(d_t + (G - 1) * H, da_o, rows, row_ok, cols, col_ok, G * H)
    if LN_HH:
        s1, s2 = _norm_sums(hp_buf, stats_h, ln_hh, da_i, da_f, da_g, da_o, t, rows, row_ok, cols, col_ok,
                            s1, s2, B, H, G)
    return s1, s2


@triton.jit
def _hp_hat(hp_buf, stats_h, q, t, rows, row_ok, cols, col_ok, B, H: tl.constexpr, G: tl.constexpr):
    """Normalised recurrent product p̂ of gate q, one tile."""
    mean = tl.load(stats_h + (t * B + rows) * 2, mask=row_ok, other=0.0)[:, None]
    rstd = tl.load(stats_h + (t * B + rows) * 2 + 1, mask=row_ok, other=0.0)[:, None]
    return (load_rows(hp_buf + t * B * G * H, rows, row_ok, q * H + cols, col_ok, G * H, False) - mean) * rstd


@triton.jit
def _norm_sums(hp_buf, stats_h, ln_hh, da_i, da_f, da_g, da_o, t, rows, row_ok, cols, col_ok, s1, s2, B,
               H: tl.constexpr, G: tl.constexpr):
    if G == 4:
        d = da_i * per_unit(ln_hh, cols, col_ok)
        s1 += tl.sum(d, 1)
        s2 += tl.sum(d * _hp_hat(hp_buf, stats_h, 0, t, rows, row_ok, cols, col_ok, B, H, G), 1)
    d = da_f * per_unit(ln_hh, (G - 3) * H + cols, col_ok)
    s1 += tl.sum(d, 1)
    s2 += tl.sum(d * _hp_hat(hp_buf, stats_h, G - 3, t, rows, row_ok, cols, col_ok, B, H, G), 1)
    d = da_g * per_unit(ln_hh, (G - 2) * H + cols, col_ok)
    s1 += tl.sum(d, 1)
    s2 += tl.sum(d * _hp_hat(hp_buf, stats_h, G - 2, t, rows, row_ok, cols, col_ok, B, H, G), 1)
    d = da_o * per_unit(ln_hh, (G - 1) * H + cols, col_ok)
    s1 += tl.sum(d, 1)
    s2 += tl.sum(d * _hp_hat(hp_buf, stats_h, G - 1, t, rows, row_ok, cols, col_ok, B, H, G), 1)
    return s1, s2


@triton.jit
def _norm_backward(dxg, dhp_buf, hp_buf, stats_h, ln_hh, mean_d, mean_dp, t, rows, row_ok, live, cols,
                   col_ok, B, H: tl.constexpr, G: tl.constexpr):
    """d(h @ W_hh^T) of one tile through the layer norm: (d - mean d - p̂ mean(d p̂)) rstd."""
    rstd = tl.load(stats_h + (t * B + rows) * 2 + 1, mask=row_ok, other=0.0)[:, None]
    for q in tl.static_range(G):
        gq = q * H + cols
        d = load_rows(dxg + t * B * G * H, rows, row_ok, gq, col_ok, G * H, False) * per_unit(ln_hh, gq, col_ok)
        p_hat = _hp_hat(hp_buf, stats_h, q, t, rows, row_ok, cols, col_ok, B, H, G)
        dhp = (d - mean_d[:, None] - p_hat * mean_dp[:, None]) * rstd
        store_rows(dhp_buf + t * B * G * H, tl.where(live, dhp, 0.0), rows, row_ok, gq, col_ok, G * H)


@triton.jit
def _cell_grads(dh_raw, t, k, rows, row_ok, live, cols, col_ok, s1, s2, c1, c2, dh_raw_buf, dc_buf, dxg,
                gates, cs, c_new_buf, hp_buf, stats_h, stats_c, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, zc,
                B, H: tl.constexpr, G: tl.constexpr, PEEPHOLE: tl.constexpr, LN_HH: tl.constexpr,
                LN_C: tl.constexpr, ZONEOUT_C: tl.constexpr):
    """From dh_raw of one tile to its gate gradients; with a cell layer norm, only to the partial
    row sums (Σd̂, Σd̂·ĉ) that the norm's backward waits for (dh_raw kept for after the ``sync``)."""
    i, f, g, o, c_prev, c_hat, tanh_c = _saved(gates, cs, c_new_buf, stats_c, ln_c_w, ln_c_b, t, k, rows,
                                               row_ok, cols, col_ok, B, H, G, LN_C, ZONEOUT_C)
    d_shown = dh_raw * o * (1.0 - tanh_c * tanh_c)
    if LN_C:
        d_hat = tl.where(live, d_shown * per_unit(ln_c_w, cols, col_ok), 0.0)
        c1 += tl.sum(d_hat, 1)
        c2 += tl.sum(d_hat * c_hat, 1)
        store_rows(dh_raw_buf + t * B * H, tl.where(live, dh_raw, 0.0), rows, row_ok, cols, col_ok, H)
    else:
        s1, s2 = _gate_grads(dh_raw, d_shown, i, f, g, o, tanh_c, c_prev, t, rows, row_ok, live, cols, col_ok,
                             dc_buf, dxg, hp_buf, stats_h, w_ci, w_cf, w_co, ln_hh, zc, s1, s2, B, H, G,
                             PEEPHOLE, LN_HH, ZONEOUT_C)
    return s1, s2, c1, c2


@triton.jit(do_not_specialize=["T", "B"])
def lstm_backward(dy, dh_buf, dc_buf, dxg, dhp_buf, dh_raw_buf, part_h, part_c, counter, sizes,
                  gates, cs, c_new_buf, hp_buf, stats_h, stats_c, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh,
                  ln_c_w, ln_c_b, h_mask, zh, zc, T, B, H: tl.constexpr, P: tl.constexpr, G: tl.constexpr,
                  TILES: tl.constexpr, P_TILES: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                  BLOCK_K: tl.constexpr, PROGRAMS: tl.constexpr, RESIDENT: tl.constexpr,
                  PEEPHOLE: tl.constexpr, LN_HH: tl.constexpr, LN_C: tl.constexpr, PROJ: tl.constexpr,
                  H_MASK: tl.constexpr, ZONEOUT_H: tl.constexpr, ZONEOUT_C: tl.constexpr,
                  PACKED: tl.constexpr, REVERSE: tl.constexpr, INTERPRET: tl.constexpr):
    """Grid (batch tiles, PROGRAMS) as the forward; steps k = T-1 .. 0. dh_buf (T+1, B, P) holds
    dh_n in slot T and receives dh0 in slot 0; dc_buf (B, H) goes from dc_n to dc0."""
    B, me, rows, row_ok, counter, w0, w1, w2, w3 = program_start(counter, w_hh, B, H, P, G, BLOCK_B, BLOCK_H,
                                                                 BLOCK_K, RESIDENT, True)
    n_sync = 0
    k = T - 1
    while k >= 0:                                 # (a while: the interpreter cannot range over T)
        t, live = step_at(k, T, sizes, rows, B, REVERSE, PACKED)
        s1 = tl.zeros((BLOCK_B,), tl.float32)
        s2 = tl.zeros((BLOCK_B,), tl.float32)
        c1 = tl.zeros((BLOCK_B,), tl.float32)
        c2 = tl.zeros((BLOCK_B,), tl.float32)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            dh_raw = _dh_raw(dh_buf, dy, zh, w_hr, t, k, rows, row_ok, live, cols, col_ok, B, H, P,
                             BLOCK_B, BLOCK_H, BLOCK_K, PROJ, ZONEOUT_H, INTERPRET)
            s1, s2, c1, c2 = _cell_grads(dh_raw, t, k, rows, row_ok, live, cols, col_ok, s1, s2, c1, c2,
                                         dh_raw_buf, dc_buf, dxg, gates, cs, c_new_buf, hp_buf, stats_h,
                                         stats_c, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, zc, B, H, G,
                                         PEEPHOLE, LN_HH, LN_C, ZONEOUT_C)
        if LN_C:                                  # the cell norm's backward needs whole-row sums
            mean_d, mean_dc, n_sync = exchange_sums(part_c, me, rows, row_ok, c1, c2, counter, n_sync, B, PROGRAMS)
            mean_d = mean_d[:, None] / H
            mean_dc = mean_dc[:, None] / H
            rstd = tl.load(stats_c + (t * B + rows) * 2 + 1, mask=row_ok, other=0.0)[:, None]
            for tile0 in range(0, TILES, PROGRAMS):
                cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
                dh_raw = load_rows(dh_raw_buf + t * B * H, rows, row_ok, cols, col_ok, H, False)
                i, f, g, o, c_prev, c_hat, tanh_c = _saved(gates, cs, c_new_buf, stats_c, ln_c_w, ln_c_b, t, k,
                                                           rows, row_ok, cols, col_ok, B, H, G, True, ZONEOUT_C)
                d_hat = dh_raw * o * (1.0 - tanh_c * tanh_c) * per_unit(ln_c_w, cols, col_ok)
                dc_shown = (d_hat - mean_d - c_hat * mean_dc) * rstd
                s1, s2 = _gate_grads(dh_raw, dc_shown, i, f, g, o, tanh_c, c_prev, t, rows, row_ok, live, cols,
                                     col_ok, dc_buf, dxg, hp_buf, stats_h, w_ci, w_cf, w_co, ln_hh, zc, s1, s2,
                                     B, H, G, PEEPHOLE, LN_HH, ZONEOUT_C)
        d_rows = dxg
        if LN_HH:                                 # back through the norm of h @ W_hh^T
            mean_d, mean_dp, n_sync = exchange_sums(part_h, me, rows, row_ok, s1, s2, counter, n_sync, B, PROGRAMS)
            for tile0 in range(0, TILES, PROGRAMS):
                cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
                _norm_backward(dxg, dhp_buf, hp_buf, stats_h, ln_hh, mean_d / (G * H), mean_dp / (G * H), t,
                               rows, row_ok, live, cols, col_ok, B, H, G)
            d_rows = dhp_buf
        n_sync += 1                               # the product reads every gate's gradient
        sync(counter, n_sync, PROGRAMS)
        for tile0 in range(0, P_TILES, PROGRAMS):
            pcols, pcol_ok = tile_columns(tile0 + me, BLOCK_H, P)
            acc = back_tile_products(d_rows + t * B * G * H, rows, row_ok, w_hh, w0, w1, w2, w3, pcols, pcol_ok,
                                     H, P, G, BLOCK_B, BLOCK_H, BLOCK_K, RESIDENT, INTERPRET)
            if H_MASK:
                acc *= load_rows(h_mask, rows, row_ok, pcols, pcol_ok, P, False)
            dh, _ = _dh_next(dh_buf, dy, zh, t, k, rows, row_ok, live, pcols, pcol_ok, B, P, False)
            if ZONEOUT_H:
                acc += dh * load_rows(zh + t * B * P, rows, row_ok, pcols, pcol_ok, P, False)
            carried = load_rows(dh_buf + (k + 1) * B * P, rows, row_ok, pcols, pcol_ok, P, True)
            store_rows(dh_buf + k * B * P, tl.where(live, acc, carried), rows, row_ok, pcols, pcol_ok, P)
        n_sync += 1                               # the next step reads every column of dh
        sync(counter, n_sync, PROGRAMS)
        k -= 1
