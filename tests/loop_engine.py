"""A test oracle: the recurrence contract computed by looping the spec cells under autograd.

Slow and obviously right; engines and layers are compared against it.
"""
from __future__ import annotations

import torch

from lstmkit.nn.cells import gru_cell, lstm_cell, rnn_cell


def _steps(steps: int, reverse: bool):
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _active(batch_sizes, t, batch):
    return batch if batch_sizes is None else batch_sizes[t]


def _identity_like(xg):
    return torch.eye(xg.shape[-1], dtype=xg.dtype, device=xg.device)


def lstm_recurrence(xg, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b,
                    h_mask, zh, zc, batch_sizes, reverse, eps=1e-5):
    steps, batch, _ = xg.shape
    h, c = h0, c0
    ys, gates, cells = [None] * steps, [None] * steps, [None] * steps
    eye = _identity_like(xg)
    for t in _steps(steps, reverse):
        n = _active(batch_sizes, t, batch)
        step = lstm_cell(xg[t, :n], h[:n], c[:n], eye, w_hh, w_hr=w_hr, w_ci=w_ci, w_cf=w_cf, w_co=w_co,
                         ln_hh=ln_hh, ln_c_w=ln_c_w, ln_c_b=ln_c_b, coupled=w_hh.shape[0] == 3 * c0.shape[1],
                         h_mask=None if h_mask is None else h_mask[:n],
                         zh=None if zh is None else zh[t, :n], zc=None if zc is None else zc[t, :n], eps=eps)
        h = torch.cat([step.h, h[n:]]) if n < batch else step.h
        c = torch.cat([step.c, c[n:]]) if n < batch else step.c
        pad = lambda v: torch.cat([v, v.new_zeros(batch - n, v.shape[1])]) if n < batch else v  # noqa
        ys[t] = pad(step.h)
        acts = [step.f, step.g, step.o] if w_hh.shape[0] == 3 * c0.shape[1] else [step.i, step.f, step.g, step.o]
        gates[t] = pad(torch.cat(acts, -1))
        cells[t] = pad(step.c)
    return torch.stack(ys), h, c, torch.stack(gates).detach(), torch.stack(cells).detach()


def gru_recurrence(xg, h0, w_hh, b_hh, batch_sizes, reverse):
    steps, batch, _ = xg.shape
    h = h0
    ys, gates = [None] * steps, [None] * steps
    eye = _identity_like(xg)
    for t in _steps(steps, reverse):
        n = _active(batch_sizes, t, batch)
        h_new, g = gru_cell(xg[t, :n], h[:n], eye, w_hh, None if b_hh is None else torch.zeros_like(b_hh), b_hh)
        pad = lambda v: torch.cat([v, v.new_zeros(batch - n, v.shape[1])]) if n < batch else v  # noqa
        h = torch.cat([h_new, h[n:]]) if n < batch else h_new
        ys[t], gates[t] = pad(h_new), pad(g)
    return torch.stack(ys), h, torch.stack(gates).detach()


def rnn_recurrence(xg, h0, w_hh, nonlinearity, batch_sizes, reverse):
    steps, batch, _ = xg.shape
    h = h0
    ys = [None] * steps
    eye = _identity_like(xg)
    for t in _steps(steps, reverse):
        n = _active(batch_sizes, t, batch)
        h_new = rnn_cell(xg[t, :n], h[:n], eye, w_hh, nonlinearity=nonlinearity)
        h = torch.cat([h_new, h[n:]]) if n < batch else h_new
        ys[t] = torch.cat([h_new, h_new.new_zeros(batch - n, h_new.shape[1])]) if n < batch else h_new
    return torch.stack(ys), h
