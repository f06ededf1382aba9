"""Elman RNN forward and backward, one launch each: h' = act(xg + W_hh h), act tanh or relu;
backward da = dh act'(h'), dh_prev = da @ W_hh."""
import triton
import triton.language as tl

from .common import (back_tile_products, load_rows, program_start, step_at, store_rows, sync, tanh,
                     tile_columns, tile_products)


@triton.jit(do_not_specialize=["T", "B"])
def rnn_forward(xg, hs, counter, sizes, w_hh, T, B, H: tl.constexpr, P: tl.constexpr, G: tl.constexpr,
                TILES: tl.constexpr, P_TILES: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                BLOCK_K: tl.constexpr, PROGRAMS: tl.constexpr, RESIDENT: tl.constexpr, RELU: tl.constexpr,
                PACKED: tl.constexpr, REVERSE: tl.constexpr, INTERPRET: tl.constexpr):
    """Grid (batch tiles, PROGRAMS); hs (T+1, B, H) with h0 in slot 0."""
    B, me, rows, row_ok, counter, w0, w1, w2, w3 = program_start(counter, w_hh, B, H, H, 1, BLOCK_B, BLOCK_H,
                                                                 BLOCK_K, RESIDENT, False)
    n_sync = 0
    k = 0
    while k < T:
        t, live = step_at(k, T, sizes, rows, B, REVERSE, PACKED)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            _, _, _, a = tile_products(hs + k * B * H, hs, rows, row_ok, w_hh, w0, w1, w2, w3, cols, col_ok, H, H, 1,
                                       BLOCK_B, BLOCK_H, BLOCK_K, RESIDENT, False, INTERPRET)
            a += load_rows(xg + t * B * H, rows, row_ok, cols, col_ok, H, False)
            if RELU:
                h_new = tl.maximum(a, 0.0)
            else:
                h_new = tanh(a)
            h_prev = load_rows(hs + k * B * H, rows, row_ok, cols, col_ok, H, True)
            store_rows(hs + (k + 1) * B * H, tl.where(live, h_new, h_prev), rows, row_ok, cols, col_ok, H)
        n_sync += 1
        sync(counter, n_sync, PROGRAMS)
        k += 1


@triton.jit(do_not_specialize=["T", "B"])
def rnn_backward(dy, dh_buf, dxg, counter, sizes, hs, w_hh, T, B, H: tl.constexpr, P: tl.constexpr,
                 G: tl.constexpr, TILES: tl.constexpr, P_TILES: tl.constexpr, BLOCK_B: tl.constexpr,
                 BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, PROGRAMS: tl.constexpr, RESIDENT: tl.constexpr,
                 RELU: tl.constexpr, PACKED: tl.constexpr, REVERSE: tl.constexpr, INTERPRET: tl.constexpr):
    """dh_buf (T+1, B, H): dh_n in slot T, dh0 out in slot 0; dxg (T, B, H) out."""
    B, me, rows, row_ok, counter, w0, w1, w2, w3 = program_start(counter, w_hh, B, H, H, 1, BLOCK_B, BLOCK_H,
                                                                 BLOCK_K, RESIDENT, True)
    n_sync = 0
    k = T - 1
    while k >= 0:
        t, live = step_at(k, T, sizes, rows, B, REVERSE, PACKED)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            dh = load_rows(dh_buf + (k + 1) * B * H, rows, row_ok, cols, col_ok, H, True)
            dh += tl.where(live, load_rows(dy + t * B * H, rows, row_ok, cols, col_ok, H, False), 0.0)
            h_new = load_rows(hs + (k + 1) * B * H, rows, row_ok, cols, col_ok, H, False)
            if RELU:
                da = tl.where(h_new > 0.0, dh, 0.0)
            else:
                da = dh * (1.0 - h_new * h_new)
            store_rows(dxg + t * B * H, tl.where(live, da, 0.0), rows, row_ok, cols, col_ok, H)
        n_sync += 1
        sync(counter, n_sync, PROGRAMS)
        for tile0 in range(0, TILES, PROGRAMS):
            cols, col_ok = tile_columns(tile0 + me, BLOCK_H, H)
            acc = back_tile_products(dxg + t * B * H, rows, row_ok, w_hh, w0, w1, w2, w3, cols, col_ok, H, H, 1,
                                     BLOCK_B, BLOCK_H, BLOCK_K, RESIDENT, INTERPRET)
            carried = load_rows(dh_buf + (k + 1) * B * H, rows, row_ok, cols, col_ok, H, True)
            store_rows(dh_buf + k * B * H, tl.where(live, acc, carried), rows, row_ok, cols, col_ok, H)
        n_sync += 1
        sync(counter, n_sync, PROGRAMS)
        k -= 1
