"""GRU forward and backward, one launch each, the step loop inside (torch.nn.GRU's cell, gates r, z, n):
    r = σ(x_r + W_hr h + b_hr),  z = σ(x_z + W_hz h + b_hz),  hn = W_hn h + b_hn
    n = tanh(x_n + r hn),        h' = (1 - z) n + z h
Backward per step: dn = dh (1-z); da_n = dn (1-n²); da_z = dh (h - n) z(1-z); da_r = da_n hn r(1-r);
the recurrent rows get [da_r, da_z, da_n r] (kept for W_hh's gradient) and dh_prev = that @ W_hh + dh z.
"""
import triton
import triton.language as tl

from .common import (back_tile_products, load_rows, per_unit, program_start, sigmoid, step_at, store_rows, sync,
                     tanh, tile_columns, tile_products)


@triton.jit
def _gru_cell(p_r, p_z, p_n, t, k, rows, row_ok, live, cols, col_ok, xg, hs, gates, hn_buf, b_hh, B,
              H: tl.constexpr, HAS_BIAS: tl.constexpr):
    x_t = xg + t * B * 3 * H
    if HAS_BIAS:
        p_r += per_unit(b_hh, cols, col_ok)
        p_z += per_unit(b_hh + H, cols, col_ok)
        p_n += per_unit(b_hh + 2 * H, cols, col_ok)
    r = sigmoid(load_rows(x_t, rows, row_ok, cols, col_ok, 3 * H, False) + p_r)          # reset gate
    z = sigmoid(load_rows(x_t, rows, row_ok, H + cols, col_ok, 3 * H, False) + p_z)      # update gate
    n = tanh(load_rows(x_t, rows, row_ok, 2 * H + cols, col_ok, 3 * H, False) + r * p_n)  # candidate
    h_prev = load_rows(hs + k * B * H, rows, row_ok, cols, col_ok, H, True)
    h_new = (1.0 - z) * n + z * h_prev
    record = gates + t * B * 3 * H
    store_rows(record, tl.where(live, r, 0.0), rows, row_ok, cols, col_ok, 3 * H)
    store_rows(record + H, tl.where(live, z, 0.0), rows, row_ok, cols, col_ok, 3 * H)
    store_rows(record + 2 * H, tl.where(live, n, 0.0), rows, row_ok, cols, col_ok, 3 * H)
    store_rows(hn_buf + t * B * H, tl.where(live, p_n, 0.0), rows, row_ok, cols, col_ok, H)
    store_rows(hs + (k + 1) * B * H, tl.where(live, h_new, h_prev), rows, row_ok, cols, col_ok, H)


@triton.jit(do_not_specialize=["T", "B"])
def gru_forward(xg, hs, gates, hn_buf, counter, sizes, w_hh, b_hh, T, B, H: tl.constexpr, P: tl.constexpr,
                G: tl.constexpr, TILES: tl.constexpr, P_TILES: tl.constexpr, BLOCK_B: tl.constexpr,
                BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PROGRAMS: tl.constexpr, RESIDENT: tl.constexpr,
                HAS_BIAS: tl.constexpr, PACKED: tl.constexpr, REVERSE: tl.constexpr, INTERPRET: tl.constexpr):
    """Grid (batch tiles, PROGRAMS); hs (T+1, B, H) with h0 in slot 0; gates (T, B, 3H); hn_buf (T, B, H)."""
    B, me, rows, row_ok, counter, w0, w1, w2, w3 = program_start(counter, w_hh, B, H, H, 3, BLOCK_B, BLOCK_H,
                                                                 BLOCK_K, RESIDENT, False)
    n_sync = 0
    k = 0
    while k < T:
        t, live = step_at(k, T, sizes, rows, B, REVERSE, PACKED)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            _, p_r, p_z, p_n = tile_products(hs + k * B * H, hs, rows, row_ok, w_hh, w0, w1, w2, w3, cols, col_ok,
                                             H, H, 3, BLOCK_B, BLOCK_H, BLOCK_K, RESIDENT, False, INTERPRET)
            _gru_cell(p_r, p_z, p_n, t, k, rows, row_ok, live, cols, col_ok, xg, hs, gates, hn_buf, b_hh, B,
                      H, HAS_BIAS)
        n_sync += 1
        sync(counter, n_sync, PROGRAMS)
        k += 1


@triton.jit
def _gru_cell_grads(t, k, rows, row_ok, live, cols, col_ok, dy, dh_buf, dxg, dhp_buf, hs, gates, hn_buf, B,
                    H: tl.constexpr):
    dh = load_rows(dh_buf + (k + 1) * B * H, rows, row_ok, cols, col_ok, H, True)
    dh += tl.where(live, load_rows(dy + t * B * H, rows, row_ok, cols, col_ok, H, False), 0.0)
    record = gates + t * B * 3 * H
    r = load_rows(record, rows, row_ok, cols, col_ok, 3 * H, False)
    z = load_rows(record, rows, row_ok, H + cols, col_ok, 3 * H, False)
    n = load_rows(record, rows, row_ok, 2 * H + cols, col_ok, 3 * H, False)
    hn = load_rows(hn_buf + t * B * H, rows, row_ok, cols, col_ok, H, False)
    h_prev = load_rows(hs + k * B * H, rows, row_ok, cols, col_ok, H, False)
    da_n = tl.where(live, dh * (1.0 - z) * (1.0 - n * n), 0.0)
    da_z = tl.where(live, dh * (h_prev - n) * z * (1.0 - z), 0.0)
    da_r = da_n * hn * r * (1.0 - r)
    d_t = dxg + t * B * 3 * H
    store_rows(d_t, da_r, rows, row_ok, cols, col_ok, 3 * H)
    store_rows(d_t + H, da_z, rows, row_ok, cols, col_ok, 3 * H)
    store_rows(d_t + 2 * H, da_n, rows, row_ok, cols, col_ok, 3 * H)
    d_t = dhp_buf + t * B * 3 * H
    store_rows(d_t, da_r, rows, row_ok, cols, col_ok, 3 * H)
    store_rows(d_t + H, da_z, rows, row_ok, cols, col_ok, 3 * H)
    store_rows(d_t + 2 * H, da_n * r, rows, row_ok, cols, col_ok, 3 * H)


@triton.jit(do_not_specialize=["T", "B"])
def gru_backward(dy, dh_buf, dxg, dhp_buf, counter, sizes, hs, gates, hn_buf, w_hh, T, B, H: tl.constexpr,
                 P: tl.constexpr, G: tl.constexpr, TILES: tl.constexpr, P_TILES: tl.constexpr,
                 BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PROGRAMS: tl.constexpr,
                 RESIDENT: tl.constexpr, HAS_BIAS: tl.constexpr, PACKED: tl.constexpr, REVERSE: tl.constexpr,
                 INTERPRET: tl.constexpr):
    """dh_buf (T+1, B, H): dh_n in slot T, dh0 out in slot 0; dxg and dhp_buf (T, B, 3H) out."""
    B, me, rows, row_ok, counter, w0, w1, w2, w3 = program_start(counter, w_hh, B, H, H, 3, BLOCK_B, BLOCK_H,
                                                                 BLOCK_K, RESIDENT, True)
    n_sync = 0
    k = T - 1
    while k >= 0:
        t, live = step_at(k, T, sizes, rows, B, REVERSE, PACKED)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            _gru_cell_grads(t, k, rows, row_ok, live, cols, col_ok, dy, dh_buf, dxg, dhp_buf, hs, gates, hn_buf,
                            B, H)
        n_sync += 1
        sync(counter, n_sync, PROGRAMS)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            acc = back_tile_products(dhp_buf + t * B * 3 * H, rows, row_ok, w_hh, w0, w1, w2, w3, cols, col_ok, H, H,
                                     3, BLOCK_B, BLOCK_H, BLOCK_K, RESIDENT, INTERPRET)
            carried = load_rows(dh_buf + (k + 1) * B * H, rows, row_ok, cols, col_ok, H, True)
            dh = carried + tl.where(live, load_rows(dy + t * B * H, rows, row_ok, cols, col_ok, H, False), 0.0)
            acc += dh * load_rows(gates + t * B * 3 * H, rows, row_ok, H + cols, col_ok, 3 * H, False)
            store_rows(dh_buf + k * B * H, tl.where(live, acc, carried), rows, row_ok, cols, col_ok, H)
        n_sync += 1
        sync(counter, n_sync, PROGRAMS)
        k -= 1
