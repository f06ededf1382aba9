"""The reference engine's hand-written BPTT against the spec cells looped under autograd.

The oracle builds the input part from real w_ih, b_ih, b_hh (and the input layer norm) and steps
``lstmkit.cells.lstm_cell`` / ``gru_cell`` / ``rnn_cell``; the engine gets the same xg, computed
from the same leaves, so every gradient (x, h0, c0 and every weight) is compared.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.backends.reference import gru_recurrence, lstm_recurrence, rnn_recurrence
from lstmkit.cells import gru_cell, lstm_cell, rnn_cell

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
EPS = 1e-5


def assert_close(got, want, tol, what):
    assert (got is None) == (want is None), f"{what}: one side is None"
    if got is None:
        return
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got.double() - want.double()).abs().max().item() if got.numel() else 0.0
    scale = max(1.0, want.double().abs().max().item() if want.numel() else 0.0)
    assert err <= tol * scale, f"{what}: max difference {err:.3e} > {tol:.0e}·{scale:.2g}"


# ---------------------------------------------------------------------------------------------
# LSTM: one case = leaves (what gets gradients) + constant masks + the options.

VARIANTS = {
    "plain": {},
    "peephole": {"peephole": True},
    "layer_norm": {"layer_norm": True},
    "coupled": {"coupled": True},
    "projection": {"proj": 2},
    "recurrent_dropout": {"h_mask": True},
    "zoneout_train": {"zoneout": "train"},
    "zoneout_eval": {"zoneout": "eval"},
    "coupled_peephole": {"coupled": True, "peephole": True},
    "peephole_layer_norm_projection": {"peephole": True, "layer_norm": True, "proj": 2},
    "everything": {"peephole": True, "layer_norm": True, "proj": 2, "h_mask": True, "zoneout": "train"},
    "everything_coupled": {"coupled": True, "peephole": True, "layer_norm": True, "h_mask": True,
                           "zoneout": "eval"},
}


def lstm_case(options, steps=5, batch=4, inp=3, hidden=3, dtype=torch.float64, seed=0, bias=True):
    gen = torch.Generator().manual_seed(seed)
    # drawn in float64 and rounded, so every dtype sees the same numbers
    rand = lambda *shape, scale=0.5: (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)  # noqa
    rows = (3 if options.get("coupled") else 4) * hidden
    out = options.get("proj", 0) or hidden
    leaves = {"x": rand(steps, batch, inp, scale=1.0), "h0": rand(batch, out), "c0": rand(batch, hidden),
              "w_ih": rand(rows, inp), "w_hh": rand(rows, out)}
    if bias:
        leaves.update(b_ih=rand(rows), b_hh=rand(rows))
    if options.get("proj"):
        leaves["w_hr"] = rand(out, hidden)
    if options.get("peephole"):
        if not options.get("coupled"):
            leaves["w_ci"] = rand(hidden)
        leaves.update(w_cf=rand(hidden), w_co=rand(hidden))
    if options.get("layer_norm"):  # gains away from 1 so that their gradients matter
        leaves.update(ln_ih=1 + rand(rows, scale=0.2), ln_hh=1 + rand(rows, scale=0.2),
                      ln_c_w=1 + rand(hidden, scale=0.2), ln_c_b=rand(hidden, scale=0.2))
    masks = {}
    if options.get("h_mask"):
        masks["h_mask"] = (torch.rand(batch, out, generator=gen) < 0.7).to(dtype) / 0.7
    if options.get("zoneout") == "train":
        masks["zh"] = (torch.rand(steps, batch, out, generator=gen) < 0.3).to(dtype)
        masks["zc"] = (torch.rand(steps, batch, hidden, generator=gen) < 0.5).to(dtype)
    elif options.get("zoneout") == "eval":
        masks["zh"] = torch.full((steps, batch, out), 0.1, dtype=dtype)
        masks["zc"] = torch.full((1, 1, hidden), 0.4, dtype=dtype).expand(steps, batch, hidden)
    for v in leaves.values():
        v.requires_grad_(True)
    return leaves, masks, bool(options.get("coupled"))


def lstm_oracle(leaves, masks, coupled, batch_sizes=None, reverse=False):
    """The spec cell in a Python loop under autograd; rows past batch_sizes[t] hold their state."""
    p = leaves
    steps, batch = p["x"].shape[:2]
    h, c = p["h0"], p["c0"]
    ys, gates, cells = [None] * steps, [None] * steps, [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        n = batch if batch_sizes is None else batch_sizes[t]
        m = lambda name: None if name not in masks else (masks[name][:n] if name == "h_mask" else masks[name][t, :n])  # noqa
        s = lstm_cell(p["x"][t, :n], h[:n], c[:n], p["w_ih"], p["w_hh"], p.get("b_ih"), p.get("b_hh"),
                      w_hr=p.get("w_hr"), w_ci=p.get("w_ci"), w_cf=p.get("w_cf"), w_co=p.get("w_co"),
                      ln_ih=p.get("ln_ih"), ln_hh=p.get("ln_hh"), ln_c_w=p.get("ln_c_w"), ln_c_b=p.get("ln_c_b"),
                      coupled=coupled, h_mask=m("h_mask"), zh=m("zh"), zc=m("zc"), eps=EPS)
        pad = lambda v: torch.cat([v, v.new_zeros(batch - n, v.shape[1])])  # noqa: E731
        h, c = torch.cat([s.h, h[n:]]), torch.cat([s.c, c[n:]])
        acts = [s.f, s.g, s.o] if coupled else [s.i, s.f, s.g, s.o]
        ys[t], gates[t], cells[t] = pad(s.h), pad(torch.cat(acts, -1)), pad(s.c)
    return torch.stack(ys), h, c, torch.stack(gates), torch.stack(cells)


def lstm_engine(leaves, masks, coupled, batch_sizes=None, reverse=False):
    p = leaves
    xg = p["x"] @ p["w_ih"].t()                                  # (T, B, G·H)
    if "ln_ih" in p:
        xg = F.layer_norm(xg, xg.shape[-1:], eps=EPS) * p["ln_ih"]
    if "b_ih" in p:
        xg = xg + p["b_ih"] + p["b_hh"]
    return lstm_recurrence(xg, p["h0"], p["c0"], p["w_hh"], p.get("w_hr"), p.get("w_ci"), p.get("w_cf"),
                           p.get("w_co"), p.get("ln_hh"), p.get("ln_c_w"), p.get("ln_c_b"),
                           masks.get("h_mask"), masks.get("zh"), masks.get("zc"), batch_sizes, reverse, EPS)


def outputs_and_grads(run, leaves, n_diff=3, seed=1):
    """Run, then differentiate a fixed random projection of the differentiable outputs."""
    result = run()
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype)).sum()
               for o in result[:n_diff])
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    names = [f"output {k}" for k in range(len(result))] + [f"gradient of {n}" for n in leaves]
    return dict(zip(names, [r.detach() for r in result] + list(grads)))


def compare(run_a, run_b, leaves, tol, n_diff=3):
    """Outputs of both runs and the gradients of every leaf, within tol."""
    got, want = outputs_and_grads(run_a, leaves, n_diff), outputs_and_grads(run_b, leaves, n_diff)
    for name in want:
        assert_close(got[name], want[name], tol, name)


def error(a, b):
    return (a.double() - b.double()).abs().max().item() / max(1.0, b.double().abs().max().item())


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("layout", ["full", "packed", "reverse", "packed_reverse"])
def test_lstm_matches_cell_loop_float64(variant, layout):
    leaves, masks, coupled = lstm_case(VARIANTS[variant], seed=sum(map(ord, variant)))
    bs = [4, 4, 3, 1, 1] if "packed" in layout else None
    rev = "reverse" in layout
    compare(lambda: lstm_engine(leaves, masks, coupled, bs, rev),
            lambda: lstm_oracle(leaves, masks, coupled, bs, rev), leaves, TOL[torch.float64])


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("layout", ["full", "packed_reverse"])
def test_lstm_float32_is_as_accurate_as_the_cell(variant, layout):
    """float32 engine vs the float64 truth: within 1e-5, or within twice the float32 spec cell's own
    error where that is larger (layer norm over a few features amplifies rounding in both)."""
    bs = [4, 4, 3, 1, 1] if "packed" in layout else None
    rev = "reverse" in layout
    seed = sum(map(ord, variant))
    runs = {}
    for key, dtype, fn in (("truth", torch.float64, lstm_oracle), ("spec32", torch.float32, lstm_oracle),
                           ("engine32", torch.float32, lstm_engine)):
        leaves, masks, coupled = lstm_case(VARIANTS[variant], dtype=dtype, seed=seed)
        runs[key] = outputs_and_grads(lambda: fn(leaves, masks, coupled, bs, rev), leaves)
    for name, truth in runs["truth"].items():
        allowed = max(TOL[torch.float32], 2 * error(runs["spec32"][name], truth))
        err = error(runs["engine32"][name], truth)
        assert err <= allowed, f"{name}: float32 error {err:.2e} > {allowed:.2e}"


@pytest.mark.parametrize("which", [(0,), (1,), (2,), (0, 2)])
def test_lstm_partial_losses(which):
    """Only some outputs used: backward must treat the missing gradients as zero."""
    leaves, masks, coupled = lstm_case(VARIANTS["everything"], seed=3)
    for run_a, run_b in [(lstm_engine, lstm_oracle)]:
        got = run_a(leaves, masks, coupled, [4, 3, 3, 2, 2], True)
        want = run_b(leaves, masks, coupled, [4, 3, 3, 2, 2], True)
        loss_a = sum(got[k].sum() for k in which)
        loss_b = sum(want[k].sum() for k in which)
        ga = torch.autograd.grad(loss_a, list(leaves.values()), allow_unused=True)
        gb = torch.autograd.grad(loss_b, list(leaves.values()), allow_unused=True)
        for name, a, b in zip(leaves, ga, gb):
            assert_close(a, b, TOL[torch.float64], f"gradient of {name}")


def test_lstm_without_biases_and_with_empty_steps():
    leaves, masks, coupled = lstm_case({"peephole": True}, bias=False, seed=5)
    bs = [4, 2, 0, 0, 0]  # steps with no active row at all still carry every state
    compare(lambda: lstm_engine(leaves, masks, coupled, bs, False),
            lambda: lstm_oracle(leaves, masks, coupled, bs, False), leaves, TOL[torch.float64])


def test_gates_and_cells_are_not_differentiable_and_masks_get_no_gradient():
    leaves, masks, coupled = lstm_case(VARIANTS["everything"], seed=2)
    for m in masks.values():
        m.requires_grad_(True)
    y, h_n, c_n, gates, cells = lstm_engine(leaves, masks, coupled)
    assert y.requires_grad and h_n.requires_grad and c_n.requires_grad
    assert not gates.requires_grad and not cells.requires_grad
    (y.sum() + c_n.sum()).backward()
    assert all(m.grad is None for m in masks.values())


def test_lstm_only_requested_gradients():
    """needs_input_grad is respected: a leaf that does not require grad gets nothing computed."""
    leaves, masks, coupled = lstm_case(VARIANTS["peephole_layer_norm_projection"], seed=4)
    xg = leaves["x"].detach() @ leaves["w_ih"].detach().t()
    w_hh = leaves["w_hh"]
    y, *_ = lstm_recurrence(xg, leaves["h0"].detach(), leaves["c0"].detach(), w_hh,
                            leaves["w_hr"].detach(), leaves["w_ci"].detach(), leaves["w_cf"].detach(),
                            leaves["w_co"].detach(), leaves["ln_hh"].detach(), leaves["ln_c_w"].detach(),
                            leaves["ln_c_b"].detach())
    (g,) = torch.autograd.grad(y.sum(), [w_hh])
    assert g.shape == w_hh.shape and torch.isfinite(g).all()
    with torch.no_grad():
        y, h_n, *_ = lstm_recurrence(xg, leaves["h0"], leaves["c0"], w_hh, leaves["w_hr"])
    assert y.grad_fn is None and h_n.grad_fn is None
