"""The reference engine's hand-written BPTT against the spec cells looped under autograd.

The oracle builds the input part from real w_ih, b_ih, b_hh (and the input layer norm) and steps
``lstmkit.nn.cells.lstm_cell`` / ``gru_cell`` / ``rnn_cell``; the engine gets the same xg, computed
from the same leaves, so every gradient (x, h0, c0 and every weight) is compared.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.engines.bptt import gru_recurrence, lstm_recurrence, rnn_recurrence
from lstmkit.nn.cells import gru_cell, lstm_cell, rnn_cell

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
EPS = 1e-5


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: a second OpenMP thread only adds fork/join waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def assert_as_accurate_as_the_cell(variant, layout, dtype, floor):
    """The engine in ``dtype`` vs the float64 truth: within ``floor``, or within twice the spec
    cell's own error in ``dtype`` where that is larger (layer norm over a few features amplifies
    rounding in both)."""
    bs = [4, 4, 3, 1, 1] if "packed" in layout else None
    rev = "reverse" in layout
    seed = sum(map(ord, variant))
    runs = {}
    for key, dt, fn in (("truth", torch.float64, lstm_oracle), ("spec", dtype, lstm_oracle),
                        ("engine", dtype, lstm_engine)):
        leaves, masks, coupled = lstm_case(VARIANTS[variant], dtype=dt, seed=seed)
        runs[key] = outputs_and_grads(lambda: fn(leaves, masks, coupled, bs, rev), leaves)
    for name, truth in runs["truth"].items():
        assert runs["engine"][name].dtype == dtype
        allowed = max(floor, 2 * error(runs["spec"][name], truth))
        err = error(runs["engine"][name], truth)
        assert err <= allowed, f"{name}: {dtype} error {err:.2e} > {allowed:.2e}"


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("layout", ["full", "packed_reverse"])
def test_lstm_float32_is_as_accurate_as_the_cell(variant, layout):
    assert_as_accurate_as_the_cell(variant, layout, torch.float32, TOL[torch.float32])


@pytest.mark.parametrize("variant", ["plain", "everything", "everything_coupled"])
def test_lstm_bfloat16_is_as_accurate_as_the_cell(variant):
    assert_as_accurate_as_the_cell(variant, "packed_reverse", torch.bfloat16, 2e-2)


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


# ---------------------------------------------------------------------------------------------
# GRU and RNN against their cells.

def simple_case(rows_per_gate, steps=5, batch=4, inp=3, hidden=3, dtype=torch.float64, seed=0, bias=True):
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *shape: (torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.5).to(dtype)  # noqa
    rows = rows_per_gate * hidden
    leaves = {"x": rand(steps, batch, inp) * 2, "h0": rand(batch, hidden),
              "w_ih": rand(rows, inp), "w_hh": rand(rows, hidden)}
    if bias:
        leaves.update(b_ih=rand(rows), b_hh=rand(rows))
    return {k: v.requires_grad_(True) for k, v in leaves.items()}


def simple_oracle(step, leaves, batch_sizes, reverse):
    """Loop ``step(x_t, h) -> (h', extra)`` under autograd, rows past batch_sizes[t] holding state."""
    x, h = leaves["x"], leaves["h0"]
    steps, batch = x.shape[:2]
    ys, extras = [None] * steps, [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        n = batch if batch_sizes is None else batch_sizes[t]
        h_new, extra = step(x[t, :n], h[:n])
        pad = lambda v: torch.cat([v, v.new_zeros(batch - n, v.shape[1])])  # noqa: E731
        h = torch.cat([h_new, h[n:]])
        ys[t], extras[t] = pad(h_new), None if extra is None else pad(extra)
    return [torch.stack(ys), h] + ([] if extras[0] is None else [torch.stack(extras)])


def gru_oracle(p, batch_sizes=None, reverse=False):
    return simple_oracle(lambda x, h: gru_cell(x, h, p["w_ih"], p["w_hh"], p.get("b_ih"), p.get("b_hh")),
                         p, batch_sizes, reverse)


def gru_engine(p, batch_sizes=None, reverse=False):
    xg = p["x"] @ p["w_ih"].t() if "b_ih" not in p else p["x"] @ p["w_ih"].t() + p["b_ih"]
    return gru_recurrence(xg, p["h0"], p["w_hh"], p.get("b_hh"), batch_sizes, reverse)


def rnn_oracle(p, nonlinearity, batch_sizes=None, reverse=False):
    step = lambda x, h: (rnn_cell(x, h, p["w_ih"], p["w_hh"], p.get("b_ih"), p.get("b_hh"), nonlinearity), None)  # noqa
    return simple_oracle(step, p, batch_sizes, reverse)


def rnn_engine(p, nonlinearity, batch_sizes=None, reverse=False):
    xg = p["x"] @ p["w_ih"].t()
    if "b_ih" in p:
        xg = xg + p["b_ih"] + p["b_hh"]
    return rnn_recurrence(xg, p["h0"], p["w_hh"], nonlinearity, batch_sizes, reverse)


LAYOUTS = [(None, False), (None, True), ([4, 4, 3, 1, 1], False), ([4, 3, 3, 2, 0], True)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gru_matches_cell_loop(layout, bias, dtype):
    leaves = simple_case(3, dtype=dtype, bias=bias, seed=7)
    compare(lambda: gru_engine(leaves, *layout), lambda: gru_oracle(leaves, *layout), leaves, TOL[dtype], n_diff=2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_rnn_matches_cell_loop(layout, nonlinearity, dtype):
    leaves = simple_case(1, dtype=dtype, seed=8)
    compare(lambda: rnn_engine(leaves, nonlinearity, *layout), lambda: rnn_oracle(leaves, nonlinearity, *layout),
            leaves, TOL[dtype], n_diff=2)


# ---------------------------------------------------------------------------------------------
# gradcheck: finite differences of the engine alone, in float64, for every variant.

def engine_inputs(leaves, masks):
    """The engine's own arguments (xg as a leaf) from an LSTM case."""
    p = {k: v.detach().clone().requires_grad_(True) for k, v in leaves.items()}
    xg = (p["x"] @ p["w_ih"].t()).detach().requires_grad_(True)
    return (xg, p["h0"], p["c0"], p["w_hh"], p.get("w_hr"), p.get("w_ci"), p.get("w_cf"), p.get("w_co"),
            p.get("ln_hh"), p.get("ln_c_w"), p.get("ln_c_b"), masks.get("h_mask"), masks.get("zh"), masks.get("zc"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_lstm_gradcheck(variant):
    leaves, masks, _ = lstm_case(VARIANTS[variant], steps=3, batch=3, inp=2, hidden=2, seed=11)
    args = engine_inputs(leaves, masks)
    for bs, rev in [(None, False), ([3, 2, 1], True)]:
        fn = lambda *a: lstm_recurrence(*a, batch_sizes=bs, reverse=rev, eps=EPS)[:3]  # noqa: E731
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_gru_gradcheck(bias):
    gen = torch.Generator().manual_seed(12)
    rand = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_(True)  # noqa
    args = (rand(4, 3, 6), rand(3, 2), rand(6, 2), rand(6) if bias else None)
    for bs, rev in [(None, False), ([3, 2, 2, 1], True)]:
        assert torch.autograd.gradcheck(lambda *a: gru_recurrence(*a, bs, rev)[:2], args, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_gradcheck(nonlinearity):
    gen = torch.Generator().manual_seed(13)
    rand = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_(True)  # noqa
    args = (rand(4, 3, 3), rand(3, 3), rand(3, 3))
    for bs, rev in [(None, False), ([3, 2, 2, 1], True)]:
        assert torch.autograd.gradcheck(lambda *a: rnn_recurrence(*a[:2], a[2], nonlinearity, bs, rev),
                                        args, eps=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Linear cost in T: the graph is one node whatever T, and saved memory grows like T.

def saved_numel(run):
    """Total elements autograd saves for backward during run()."""
    total = [0]

    def pack(t):
        total[0] += t.numel()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    return total[0], out


def graph_size(tensor):
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(n for n, _ in node.next_functions)
    return len(seen)


@pytest.mark.parametrize("kind", ["lstm_everything", "gru", "rnn"])
def test_backward_is_linear_in_steps(kind):
    sizes, nodes = {}, {}
    for steps in (50, 100, 200):
        gen = torch.Generator().manual_seed(0)
        if kind == "lstm_everything":
            leaves, masks, coupled = lstm_case(VARIANTS["everything"], steps=steps, hidden=4, seed=0)
            args = engine_inputs(leaves, masks)
            run = lambda: lstm_recurrence(*args, batch_sizes=None, reverse=True)  # noqa: E731
        elif kind == "gru":
            rand = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_(True)  # noqa
            args = (rand(steps, 3, 12), rand(3, 4), rand(12, 4), rand(12))
            run = lambda: gru_recurrence(*args)  # noqa: E731
        else:
            rand = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_(True)  # noqa
            args = (rand(steps, 3, 4), rand(3, 4), rand(4, 4))
            run = lambda: rnn_recurrence(*args)  # noqa: E731
        sizes[steps], out = saved_numel(run)
        nodes[steps] = graph_size(out[0])
    assert nodes[50] == nodes[100] == nodes[200], f"graph grows with T: {nodes}"
    # saved elements = a·T + b: the increments from 50→100 and 100→200 are in ratio 1:2
    assert sizes[200] - sizes[100] == 2 * (sizes[100] - sizes[50]), f"saved memory not linear in T: {sizes}"
    assert sizes[100] - sizes[50] > 0


# ---------------------------------------------------------------------------------------------
# Properties of the recurrence (hypothesis), on the engine alone.

PROPERTY = settings(max_examples=20, deadline=None)
variants = st.sampled_from(list(VARIANTS))


def engine_case(variant, steps, batch, seed):
    leaves, masks, _ = lstm_case(VARIANTS[variant], steps=steps, batch=batch, inp=2, hidden=3, seed=seed)
    return list(engine_inputs(leaves, masks))


def run_lstm(args, batch_sizes=None, reverse=False):
    return lstm_recurrence(*args, batch_sizes=batch_sizes, reverse=reverse, eps=EPS)


def close(a, b, what=""):
    assert_close(a.detach(), b.detach(), TOL[torch.float64], what)


@PROPERTY
@given(variants, st.integers(1, 6), st.integers(1, 3), st.integers(0, 10**6), st.data())
def test_one_step_is_the_cell(variant, _steps, batch, seed, data):
    args = engine_case(variant, 1, batch, seed)
    xg, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc = args
    y, h_n, c_n, gates, cells = run_lstm(args)
    eye = torch.eye(xg.shape[-1], dtype=xg.dtype)
    s = lstm_cell(xg[0], h0, c0, eye, w_hh, w_hr=w_hr, w_ci=w_ci, w_cf=w_cf, w_co=w_co, ln_hh=ln_hh,
                  ln_c_w=ln_c_w, ln_c_b=ln_c_b, coupled=w_hh.shape[0] == 3 * c0.shape[1], h_mask=h_mask,
                  zh=None if zh is None else zh[0], zc=None if zc is None else zc[0], eps=EPS)
    close(y[0], s.h, "y")
    close(h_n, s.h, "h_n")
    close(c_n, s.c, "c_n")
    close(cells[0], s.c, "c")
    close(gates[0, :, -c0.shape[1]:], s.o, "o")


@PROPERTY
@given(variants, st.integers(2, 7), st.integers(1, 3), st.integers(0, 10**6), st.data(), st.booleans())
def test_split_sequence_with_carried_state_is_one_pass(variant, steps, batch, seed, data, reverse):
    args = engine_case(variant, steps, batch, seed)
    cut = data.draw(st.integers(1, steps - 1))
    y, h_n, c_n, _, _ = run_lstm(args, reverse=reverse)
    part = lambda a, sl: [v[sl] if v is not None and v.dim() == 3 else v for v in a]  # noqa: E731
    first, second = (slice(cut, None), slice(0, cut)) if reverse else (slice(0, cut), slice(cut, None))
    y1, h1, c1, _, _ = run_lstm(part(args, first), reverse=reverse)
    rest = part(args, second)
    rest[1], rest[2] = h1, c1
    y2, h2, c2, _, _ = run_lstm(rest, reverse=reverse)
    close(torch.cat([y2, y1] if reverse else [y1, y2]), y, "y")
    close(h2, h_n, "h_n")
    close(c2, c_n, "c_n")


@PROPERTY
@given(variants, st.integers(1, 6), st.integers(1, 3), st.integers(0, 10**6))
def test_reverse_is_flip_run_flip(variant, steps, batch, seed):
    args = engine_case(variant, steps, batch, seed)
    flipped = [v.flip(0) if v is not None and v.dim() == 3 else v for v in args]
    rev, fwd = run_lstm(args, reverse=True), run_lstm(flipped)
    for k, (a, b) in enumerate(zip(rev, fwd)):
        close(a, b.flip(0) if k in (0, 3, 4) else b, f"output {k}")


@PROPERTY
@given(variants, st.integers(1, 5), st.integers(2, 4), st.integers(0, 10**6), st.randoms())
def test_permuting_the_batch_permutes_the_result(variant, steps, batch, seed, rnd):
    args = engine_case(variant, steps, batch, seed)
    perm = list(range(batch))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    batch_dim = {0: 1, 1: 0, 2: 0, 11: 0, 12: 1, 13: 1}   # xg, h0, c0, h_mask, zh, zc
    permuted = [v.index_select(batch_dim[k], perm) if k in batch_dim and v is not None else v
                for k, v in enumerate(args)]
    base, moved = run_lstm(args), run_lstm(permuted)
    for k, (a, b) in enumerate(zip(base, moved)):
        close(a.index_select(1 if k in (0, 3, 4) else 0, perm), b, f"output {k}")


@PROPERTY
@given(variants, st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(0, 10**6), st.booleans())
def test_packed_batch_is_each_sequence_alone(variant, lengths, seed, reverse):
    """Outputs, final states and the gradients of xg and h0, c0, row by row."""
    lengths = sorted(lengths, reverse=True)
    steps, batch = lengths[0], len(lengths)
    args = engine_case(variant, steps, batch, seed)
    batch_sizes = [sum(n > t for n in lengths) for t in range(steps)]
    y, h_n, c_n, _, _ = run_lstm(args, batch_sizes, reverse)
    gen = torch.Generator().manual_seed(seed)
    r_y, r_h, r_c = (torch.randn(v.shape, generator=gen, dtype=v.dtype) for v in (y, h_n, c_n))
    grads = torch.autograd.grad((y * r_y).sum() + (h_n * r_h).sum() + (c_n * r_c).sum(), args[:3])
    for b, n in enumerate(lengths):
        row = lambda v, k: v if v is None or k not in (0, 1, 2, 11, 12, 13) else (  # noqa: E731
            v[:n, b:b + 1] if v.dim() == 3 else v[b:b + 1])
        alone = [row(v, k) for k, v in enumerate(args)]
        ya, ha, ca, _, _ = run_lstm(alone, reverse=reverse)
        close(y[:n, b:b + 1], ya, f"y of row {b}")
        assert (y[n:, b] == 0).all(), "outputs past a sequence's end must be zero"
        close(h_n[b:b + 1], ha, f"h_n of row {b}")
        close(c_n[b:b + 1], ca, f"c_n of row {b}")
        g = torch.autograd.grad((ya * r_y[:n, b:b + 1]).sum() + (ha * r_h[b:b + 1]).sum()
                                + (ca * r_c[b:b + 1]).sum(), alone[:3])
        close(grads[0][:n, b:b + 1], g[0], f"d xg of row {b}")
        assert (grads[0][n:, b] == 0).all()
        close(grads[1][b:b + 1], g[1], f"d h0 of row {b}")
        close(grads[2][b:b + 1], g[2], f"d c0 of row {b}")


# ---------------------------------------------------------------------------------------------
# Other dtypes and devices.

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("variant", ["plain", "everything", "everything_coupled"])
def test_cuda_matches_cpu(variant):
    leaves, masks, coupled = lstm_case(VARIANTS[variant], seed=31)
    want = outputs_and_grads(lambda: lstm_engine(leaves, masks, coupled, [4, 4, 3, 1, 1], True), leaves)
    cuda = {k: v.detach().cuda().requires_grad_(True) for k, v in leaves.items()}
    got = outputs_and_grads(lambda: lstm_engine(cuda, {k: v.cuda() for k, v in masks.items()}, coupled,
                                                [4, 4, 3, 1, 1], True), cuda)
    for name in want:
        assert_close(got[name].cpu(), want[name], 1e-9, name)
    for kind, run in (("gru", gru_engine), ("rnn", lambda p, *a: rnn_engine(p, "relu", *a))):
        leaves = simple_case(3 if kind == "gru" else 1, seed=32)
        cuda = {k: v.detach().cuda().requires_grad_(True) for k, v in leaves.items()}
        want = outputs_and_grads(lambda: run(leaves, [4, 3, 1, 1, 1], False), leaves, n_diff=2)
        got = outputs_and_grads(lambda: run(cuda, [4, 3, 1, 1, 1], False), cuda, n_diff=2)
        for name in want:
            assert_close(got[name].cpu(), want[name], 1e-9, f"{kind} {name}")


def test_bad_arguments_raise_clear_errors():
    leaves, masks, _ = lstm_case({}, seed=0)
    args = engine_inputs(leaves, masks)
    with pytest.raises(ValueError, match="batch_sizes"):
        lstm_recurrence(*args, batch_sizes=[4, 4])
    with pytest.raises(ValueError, match="h0 must have shape"):
        lstm_recurrence(args[0], args[1][:2], *args[2:])
    with pytest.raises(TypeError, match="float64"):
        lstm_recurrence(args[0], args[1].float(), *args[2:])
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn_recurrence(torch.zeros(2, 1, 3), torch.zeros(1, 3), torch.zeros(3, 3), "sigmoid")
    with pytest.raises(ValueError, match="at least one step"):
        rnn_recurrence(torch.zeros(0, 1, 3), torch.zeros(1, 3), torch.zeros(3, 3))
