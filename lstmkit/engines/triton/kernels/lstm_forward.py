"""LSTM forward: one layer-direction's whole recurrence in one launch, the step loop in the kernel.

Each step of ``lstmkit.nn.cells.lstm_cell``, per tile of hidden units, with its names:
    a_q = xg_q + (h ⊙ h_mask) @ W_q^T            (layer norm: xg_q + LN(h @ W_hh^T)_q · ln_hh_q)
    f = σ(a_f [+ w_cf c]),  i = σ(a_i [+ w_ci c]) or 1 - f (coupled),  g = tanh(a_g)
    c' = f c + i g,  o = σ(a_o [+ w_co c']),  h' = o tanh(c' or LN(c') ln_c_w + ln_c_b) [@ W_hr^T]
    c = zc c_prev + (1 - zc) c',  h = zh h_prev + (1 - zh) h'
A step meets the other programs (``sync``) before the next step's product and wherever it needs a
whole row: the statistics of a layer norm, the projection's input.
"""
import triton
import triton.language as tl

from .common import (dot, exchange_sums, gate_weights, load_rows, per_unit, program_start, sigmoid, step_at,
                     store_rows, sync, tanh, tile_columns, tile_products)


@triton.jit
def _x_plus(xg_t, p0, p1, p2, p3, rows, row_ok, cols, col_ok, H: tl.constexpr, G: tl.constexpr):
    """Pre-activations: the input part of step t (xg_t, (B, G·H)) plus the recurrent part."""
    if G == 4:
        p0 += load_rows(xg_t, rows, row_ok, cols, col_ok, G * H, False)
    p1 += load_rows(xg_t, rows, row_ok, (G - 3) * H + cols, col_ok, G * H, False)
    p2 += load_rows(xg_t, rows, row_ok, (G - 2) * H + cols, col_ok, G * H, False)
    p3 += load_rows(xg_t, rows, row_ok, (G - 1) * H + cols, col_ok, G * H, False)
    return p0, p1, p2, p3


@triton.jit
def _stash(hp_t, p0, p1, p2, p3, rows, row_ok, cols, col_ok, s1, s2, H: tl.constexpr, G: tl.constexpr):
    """Keep the recurrent products of a tile (for the layer norm after ``sync``) and add the tile's
    share to the row sums Σp, Σp² (p is zero outside the matrix)."""
    if G == 4:
        store_rows(hp_t, p0, rows, row_ok, cols, col_ok, G * H)
        s1 += tl.sum(p0, 1)
        s2 += tl.sum(p0 * p0, 1)
    store_rows(hp_t + (G - 3) * H, p1, rows, row_ok, cols, col_ok, G * H)
    store_rows(hp_t + (G - 2) * H, p2, rows, row_ok, cols, col_ok, G * H)
    store_rows(hp_t + (G - 1) * H, p3, rows, row_ok, cols, col_ok, G * H)
    s1 += tl.sum(p1, 1) + tl.sum(p2, 1) + tl.sum(p3, 1)
    s2 += tl.sum(p1 * p1, 1) + tl.sum(p2 * p2, 1) + tl.sum(p3 * p3, 1)
    return s1, s2


@triton.jit
def _normalised(hp_t, ln_hh, mean, rstd, rows, row_ok, cols, col_ok, H: tl.constexpr, G: tl.constexpr):
    """LN(h @ W_hh^T) · ln_hh for one tile, from the stashed products and the row statistics."""
    m = mean[:, None]
    r = rstd[:, None]
    p0 = tl.zeros((rows.shape[0], cols.shape[0]), tl.float32)
    if G == 4:
        p0 = (load_rows(hp_t, rows, row_ok, cols, col_ok, G * H, False) - m) * r * per_unit(ln_hh, cols, col_ok)
    q = (G - 3) * H + cols
    p1 = (load_rows(hp_t, rows, row_ok, q, col_ok, G * H, False) - m) * r * per_unit(ln_hh, q, col_ok)
    q = (G - 2) * H + cols
    p2 = (load_rows(hp_t, rows, row_ok, q, col_ok, G * H, False) - m) * r * per_unit(ln_hh, q, col_ok)
    q = (G - 1) * H + cols
    p3 = (load_rows(hp_t, rows, row_ok, q, col_ok, G * H, False) - m) * r * per_unit(ln_hh, q, col_ok)
    return p0, p1, p2, p3


@triton.jit
def _cell(a_i, a_f, a_g, a_o, t, k, rows, row_ok, live, cols, col_ok, cs, gates, c_new_buf,
          w_ci, w_cf, w_co, zc, B, H: tl.constexpr, G: tl.constexpr,
          PEEPHOLE: tl.constexpr, ZONEOUT_C: tl.constexpr):
    """Gates and new cell of one tile. Writes the gate record (zero where a row is inactive), the
    un-zoned c' (zoneout) and the next cell state (held where inactive). Returns o, c'."""
    c_prev = load_rows(cs + k * B * H, rows, row_ok, cols, col_ok, H, False)   # (BLOCK_B, BLOCK_H)
    if PEEPHOLE:                                  # the input and forget gates look at the old cell
        a_f += per_unit(w_cf, cols, col_ok) * c_prev
        if G == 4:
            a_i += per_unit(w_ci, cols, col_ok) * c_prev
    f = sigmoid(a_f)                              # forget gate
    if G == 4:
        i = sigmoid(a_i)                          # input gate
    else:
        i = 1.0 - f                               # coupled: what is forgotten is written
    g = tanh(a_g)                                 # candidate
    c_new = f * c_prev + i * g                    # new long-term memory
    if PEEPHOLE:                                  # the output gate looks at the new cell
        a_o += per_unit(w_co, cols, col_ok) * c_new
    o = sigmoid(a_o)                              # output gate
    record = gates + t * B * G * H
    if G == 4:
        store_rows(record, tl.where(live, i, 0.0), rows, row_ok, cols, col_ok, G * H)
    store_rows(record + (G - 3) * H, tl.where(live, f, 0.0), rows, row_ok, cols, col_ok, G * H)
    store_rows(record + (G - 2) * H, tl.where(live, g, 0.0), rows, row_ok, cols, col_ok, G * H)
    store_rows(record + (G - 1) * H, tl.where(live, o, 0.0), rows, row_ok, cols, col_ok, G * H)
    c_next = c_new
    if ZONEOUT_C:
        z = load_rows(zc + t * B * H, rows, row_ok, cols, col_ok, H, False)
        c_next = z * c_prev + (1.0 - z) * c_new
        store_rows(c_new_buf + t * B * H, c_new, rows, row_ok, cols, col_ok, H)
    store_rows(cs + (k + 1) * B * H, tl.where(live, c_next, c_prev), rows, row_ok, cols, col_ok, H)
    return o, c_new


@triton.jit
def _next_hidden(h_new, t, k, rows, row_ok, live, cols, col_ok, hs, zh, B, P: tl.constexpr,
                 ZONEOUT_H: tl.constexpr):
    """h of the next state for one tile of h's P columns (held where a row is inactive)."""
    h_prev = load_rows(hs + k * B * P, rows, row_ok, cols, col_ok, P, True)
    h_next = h_new
    if ZONEOUT_H:
        z = load_rows(zh + t * B * P, rows, row_ok, cols, col_ok, P, False)
        h_next = z * h_prev + (1.0 - z) * h_new
    store_rows(hs + (k + 1) * B * P, tl.where(live, h_next, h_prev), rows, row_ok, cols, col_ok, P)


@triton.jit
def _hidden(o, c_new, mean_c, rstd_c, t, k, rows, row_ok, live, cols, col_ok, hs, h_raw_buf,
            ln_c_w, ln_c_b, zh, B, H: tl.constexpr, P: tl.constexpr,
            LN_C: tl.constexpr, PROJ: tl.constexpr, ZONEOUT_H: tl.constexpr):
    """h' = o tanh(shown cell) for one tile; projected later (kept in h_raw_buf), else the next h."""
    shown = c_new
    if LN_C:
        shown = (c_new - mean_c[:, None]) * rstd_c[:, None] * per_unit(ln_c_w, cols, col_ok) \
            + per_unit(ln_c_b, cols, col_ok)
    h_new = o * tanh(shown)                       # new short-term memory
    if PROJ:
        store_rows(h_raw_buf + t * B * H, tl.where(live, h_new, 0.0), rows, row_ok, cols, col_ok, H)
    else:
        _next_hidden(h_new, t, k, rows, row_ok, live, cols, col_ok, hs, zh, B, P, ZONEOUT_H)


@triton.jit
def _project(t, k, rows, row_ok, live, tile, hs, h_raw_buf, w_hr, zh, B, H: tl.constexpr, P: tl.constexpr,
             BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
             ZONEOUT_H: tl.constexpr, INTERPRET: tl.constexpr):
    """h = h' @ W_hr^T for one tile of the P outputs, then zoneout."""
    pcols, pcol_ok = tile_columns(tile, BLOCK_H, P)
    acc = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    for k0 in range(0, H, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        k_ok = kk < H
        h_raw = load_rows(h_raw_buf + t * B * H, rows, row_ok, kk, k_ok, H, True)
        acc += dot(h_raw, gate_weights(w_hr, 0, pcols, pcol_ok, kk, k_ok, P, H), INTERPRET)
    _next_hidden(acc, t, k, rows, row_ok, live, pcols, pcol_ok, hs, zh, B, P, ZONEOUT_H)


@triton.jit
def _cell_and_hidden(a0, a1, a2, a3, t, k, rows, row_ok, live, cols, col_ok, c1, c2,
                     hs, cs, gates, c_new_buf, h_raw_buf, w_ci, w_cf, w_co, zh, zc, B,
                     H: tl.constexpr, P: tl.constexpr, G: tl.constexpr, PEEPHOLE: tl.constexpr,
                     LN_C: tl.constexpr, PROJ: tl.constexpr, ZONEOUT_H: tl.constexpr,
                     ZONEOUT_C: tl.constexpr):
    """From a tile's pre-activations to its part of h, or, with a cell layer norm, to the partial
    row sums of c' (Σc', Σc'²) that the norm waits for."""
    o, c_new = _cell(a0, a1, a2, a3, t, k, rows, row_ok, live, cols, col_ok, cs, gates, c_new_buf,
                     w_ci, w_cf, w_co, zc, B, H, G, PEEPHOLE, ZONEOUT_C)
    if LN_C:
        c_new = tl.where(row_ok[:, None] & col_ok[None, :], c_new, 0.0)
        c1 += tl.sum(c_new, 1)
        c2 += tl.sum(c_new * c_new, 1)
    else:
        _hidden(o, c_new, c1, c2, t, k, rows, row_ok, live, cols, col_ok, hs, h_raw_buf, w_co, w_co,
                zh, B, H, P, False, PROJ, ZONEOUT_H)
    return c1, c2


@triton.jit
def _kept_stats(stats_t, s1, s2, count, eps, me, rows, row_ok):
    """Mean and 1/sqrt(var + eps) of each row's ``count`` values from their totals Σx, Σx²; the
    first program keeps them in stats_t (B, 2) for the backward."""
    mean = s1 / count
    rstd = 1.0 / tl.sqrt(tl.maximum(s2 / count - mean * mean, 0.0) + eps)
    tl.store(stats_t + rows * 2, mean, mask=row_ok & (me == 0))
    tl.store(stats_t + rows * 2 + 1, rstd, mask=row_ok & (me == 0))
    return mean, rstd


@triton.jit(do_not_specialize=["T", "B"])
def lstm_forward(xg, hs, cs, gates, c_new_buf, hp_buf, stats_h, stats_c, h_raw_buf, part_h, part_c,
                 counter, sizes, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc,
                 T, B, eps, H: tl.constexpr, P: tl.constexpr, G: tl.constexpr, TILES: tl.constexpr,
                 P_TILES: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                 BLOCK_K: tl.constexpr, PROGRAMS: tl.constexpr, RESIDENT: tl.constexpr,
                 PEEPHOLE: tl.constexpr, LN_HH: tl.constexpr, LN_C: tl.constexpr, PROJ: tl.constexpr,
                 H_MASK: tl.constexpr, ZONEOUT_H: tl.constexpr, ZONEOUT_C: tl.constexpr,
                 PACKED: tl.constexpr, REVERSE: tl.constexpr, INTERPRET: tl.constexpr):
    """Grid (batch tiles, PROGRAMS); program ``me`` runs hidden tiles me, me + PROGRAMS, ..."""
    B, me, rows, row_ok, counter, w0, w1, w2, w3 = program_start(counter, w_hh, B, H, P, G, BLOCK_B, BLOCK_H,
                                                                 BLOCK_K, RESIDENT, False)
    n_sync = 0
    k = 0
    while k < T:                                  # (a while: the interpreter cannot range over T)
        t, live = step_at(k, T, sizes, rows, B, REVERSE, PACKED)
        s1 = tl.zeros((BLOCK_B,), tl.float32)
        s2 = tl.zeros((BLOCK_B,), tl.float32)
        c1 = tl.zeros((BLOCK_B,), tl.float32)
        c2 = tl.zeros((BLOCK_B,), tl.float32)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            p0, p1, p2, p3 = tile_products(hs + k * B * P, h_mask, rows, row_ok, w_hh, w0, w1, w2, w3, cols, col_ok,
                                           H, P, G, BLOCK_B, BLOCK_H, BLOCK_K, RESIDENT, H_MASK, INTERPRET)
            if LN_HH:
                s1, s2 = _stash(hp_buf + t * B * G * H, p0, p1, p2, p3, rows, row_ok, cols, col_ok,
                                s1, s2, H, G)
            else:
                a0, a1, a2, a3 = _x_plus(xg + t * B * G * H, p0, p1, p2, p3, rows, row_ok, cols, col_ok, H, G)
                c1, c2 = _cell_and_hidden(a0, a1, a2, a3, t, k, rows, row_ok, live, cols, col_ok, c1, c2,
                                          hs, cs, gates, c_new_buf, h_raw_buf, w_ci, w_cf, w_co, zh, zc, B,
                                          H, P, G, PEEPHOLE, LN_C, PROJ, ZONEOUT_H, ZONEOUT_C)
        if LN_HH:                                 # the norm of h @ W_hh^T needs the whole row
            s1, s2, n_sync = exchange_sums(part_h, me, rows, row_ok, s1, s2, counter, n_sync, B, PROGRAMS)
            mean, rstd = _kept_stats(stats_h + t * B * 2, s1, s2, G * H, eps, me, rows, row_ok)
            for tile0 in range(0, TILES, PROGRAMS):
                cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
                p0, p1, p2, p3 = _normalised(hp_buf + t * B * G * H, ln_hh, mean, rstd, rows, row_ok,
                                             cols, col_ok, H, G)
                a0, a1, a2, a3 = _x_plus(xg + t * B * G * H, p0, p1, p2, p3, rows, row_ok, cols, col_ok, H, G)
                c1, c2 = _cell_and_hidden(a0, a1, a2, a3, t, k, rows, row_ok, live, cols, col_ok, c1, c2,
                                          hs, cs, gates, c_new_buf, h_raw_buf, w_ci, w_cf, w_co, zh, zc, B,
                                          H, P, G, PEEPHOLE, LN_C, PROJ, ZONEOUT_H, ZONEOUT_C)
        if LN_C:                                  # the norm of c' needs the whole row
            c1, c2, n_sync = exchange_sums(part_c, me, rows, row_ok, c1, c2, counter, n_sync, B, PROGRAMS)
            mean_c, rstd_c = _kept_stats(stats_c + t * B * 2, c1, c2, H, eps, me, rows, row_ok)
            for tile0 in range(0, TILES, PROGRAMS):
                cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
                o = load_rows(gates + t * B * G * H, rows, row_ok, (G - 1) * H + cols, col_ok, G * H, False)
                if ZONEOUT_C:
                    c_new = load_rows(c_new_buf + t * B * H, rows, row_ok, cols, col_ok, H, False)
                else:
                    c_new = load_rows(cs + (k + 1) * B * H, rows, row_ok, cols, col_ok, H, False)
                _hidden(o, c_new, mean_c, rstd_c, t, k, rows, row_ok, live, cols, col_ok, hs, h_raw_buf,
                        ln_c_w, ln_c_b, zh, B, H, P, True, PROJ, ZONEOUT_H)
        if PROJ:                                  # the projection reads every unit of h'
            n_sync += 1
            sync(counter, n_sync, PROGRAMS)
            for tile0 in range(0, P_TILES, PROGRAMS):
                _project(t, k, rows, row_ok, live, tile0 + me, hs, h_raw_buf, w_hr, zh, B, H, P,
                         BLOCK_B, BLOCK_H, BLOCK_K, ZONEOUT_H, INTERPRET)
        n_sync += 1                               # the next product reads every unit of h
        sync(counter, n_sync, PROGRAMS)
        k += 1
