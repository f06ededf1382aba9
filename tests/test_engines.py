"""Every registered recurrence engine against the specification engine (``lstmkit.engines.loop``).

Outputs, final states, gate records and every gradient, for every LSTM option set of the contract,
GRU and RNN, packed and reversed; finite differences in float64; and the invariants of a
recurrence (DESIGN.md) on generated cases. An engine that cannot run here is skipped with its
reason. Engine-specific behaviour (speed paths, build, errors) has its own test file.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_cases import (CONFIGS, RECURRENCE_ENGINES, engine_params, lstm_case, run_lstm, run_simple,
                          simple_case)
from lstmkit import engines
from lstmkit.engines import loop
from lstmkit.engines.contract import LSTMState, Masks, Steps
from lstmkit.nn.cells import lstm_cell
from parity import TOLERANCE, assert_close

# torch's scan retraces its body for every new shape (about a second), so the scan engine, made for
# exported graphs, gets the option sets that cover its code here and its many shapes in test_export.py
ENGINES = engine_params(*[name for name in RECURRENCE_ENGINES if name != "scan"])
RESULTS = ("y", "h_n", "c_n", "gates", "cells")


# tiny tensors: a second OpenMP thread only adds fork/join waits on a busy machine
pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same_as_loop(engine, case, tol, what=""):
    (got, got_grads), (want, want_grads) = run_lstm(engine, case), run_lstm(loop, case)
    for name, a, b in zip(RESULTS, got, want):
        assert a.dtype == b.dtype, f"{what}{name}: dtype {a.dtype} != {b.dtype}"
        assert_close(a, b, tol, f"{what}{name}")
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        assert_close(got_grads[name], want_grads[name], tol, f"{what}gradient of {name}")


def error(a, b):
    return (a.double() - b.double()).abs().max().item() / max(1.0, b.double().abs().max().item())


def assert_as_accurate_as_the_specification(engine, case, floor, what=""):
    """In a low precision, the engine against the float64 truth: within twice the specification's
    own error in that precision, plus ``floor`` (layer norm over a few features amplifies rounding
    in both; in bfloat16 a sum over every step and row of a peephole gradient does too)."""
    truth, spec, got = (run_lstm(e, c) for e, c in ((loop, case.to(dtype=torch.float64)), (loop, case),
                                                     (engine, case)))
    for k, name in enumerate(RESULTS):
        assert got[0][k].dtype == case.xg.dtype, f"{what}{name} has dtype {got[0][k].dtype}"
        allowed = floor + 2 * error(spec[0][k], truth[0][k])
        assert error(got[0][k], truth[0][k]) <= allowed, f"{what}{name}: error {error(got[0][k], truth[0][k]):.2e}"
    for name, want in truth[1].items():
        allowed = floor + 2 * error(spec[1][name], want)
        err = error(got[1][name], want)
        assert err <= allowed, f"{what}gradient of {name}: error {err:.2e} > {allowed:.2e}"


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("engine", ENGINES)
def test_lstm_matches_the_specification(engine, config):
    assert_same_as_loop(engine, lstm_case(seed=sum(map(ord, config)), **CONFIGS[config]),
                        TOLERANCE[torch.float64], f"{config}: ")


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("engine", ENGINES)
def test_lstm_float32_is_as_accurate_as_the_specification(engine, config):
    case = lstm_case(dtype=torch.float32, seed=sum(map(ord, config)), **CONFIGS[config])
    assert_as_accurate_as_the_specification(engine, case, TOLERANCE[torch.float32], f"{config}: ")


@pytest.mark.parametrize("config", ["plain", "everything", "everything_coupled"])
@pytest.mark.parametrize("engine", ENGINES)
def test_lstm_bfloat16_is_as_accurate_as_the_specification(engine, config):
    case = lstm_case(dtype=torch.bfloat16, seed=sum(map(ord, config)), **CONFIGS[config])
    assert_as_accurate_as_the_specification(engine, case, 2e-2, f"{config}: ")


@pytest.mark.parametrize("config", ["everything", "everything_coupled", "reverse"])
def test_scan_engine_matches_the_specification(config):
    assert_same_as_loop(engines.scan, lstm_case(seed=sum(map(ord, config)), **CONFIGS[config]),
                        TOLERANCE[torch.float64], f"{config}: ")
    for case in (simple_case("gru", packed=True, reverse=True, seed=7), simple_case("rnn", nonlinearity="relu")):
        (got, _), (want, _) = run_simple(engines.scan, case), run_simple(loop, case)
        for k, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, TOLERANCE[torch.float64], f"{case.kind}: result {k}")


@pytest.mark.parametrize("engine", ENGINES)
def test_lstm_without_biases_and_with_empty_steps(engine):
    """Steps with no active row at all still carry every state."""
    case = lstm_case(T=5, B=4, peephole=True, batch_sizes=[4, 2, 0, 0, 0], seed=5)
    assert_same_as_loop(engine, case, TOLERANCE[torch.float64])


@pytest.mark.parametrize("which", [(0,), (1,), (2,), (0, 2)])
@pytest.mark.parametrize("engine", ENGINES)
def test_lstm_partial_losses(engine, which):
    """Only some results used: backward must treat the missing gradients as zero."""
    case = lstm_case(seed=3, **CONFIGS["everything"])
    grads = []
    for e in (engine, loop):
        c = case.with_leaves()
        result = e.lstm(c.xg, c.state, c.weights, c.masks, c.steps)
        leaves = c.leaves()
        grads.append(torch.autograd.grad(sum(result[k].sum() for k in which), list(leaves.values()),
                                         allow_unused=True))
    for name, a, b in zip(case.leaves(), *grads):
        a = torch.zeros_like(b) if a is None and b is not None else a
        b = torch.zeros_like(a) if b is None and a is not None else b
        assert_close(a, b, TOLERANCE[torch.float64], f"gradient of {name}")


@pytest.mark.parametrize("engine", ENGINES)
def test_records_are_not_differentiable_and_masks_get_no_gradient(engine):
    case = lstm_case(seed=2, **CONFIGS["everything"]).with_leaves()
    masks = Masks(*(m.clone().requires_grad_(True) for m in case.masks))
    y, h_n, c_n, gates, cells = engine.lstm(case.xg, case.state, case.weights, masks, case.steps)
    assert y.requires_grad and h_n.requires_grad and c_n.requires_grad
    assert not gates.requires_grad and not cells.requires_grad
    (y.sum() + c_n.sum()).backward()
    assert all(m.grad is None for m in masks)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", ["gru", "gru_nobias", "gru_packed_reverse", "tanh", "relu", "relu_packed_reverse",
                                  "tanh_reverse"])
@pytest.mark.parametrize("engine", ENGINES)
def test_gru_and_rnn_match_the_specification(engine, case, dtype):
    kind = "gru" if case.startswith("gru") else "rnn"
    c = simple_case(kind, dtype=dtype, packed="packed" in case, reverse="reverse" in case,
                    bias="nobias" not in case, nonlinearity="relu" if case.startswith("relu") else "tanh", seed=7)
    (got, got_grads), (want, want_grads) = run_simple(engine, c), run_simple(loop, c)
    for k, (a, b) in enumerate(zip(got, want)):
        assert_close(a, b, TOLERANCE[dtype], f"{case}: result {k}")
    for name in want_grads:
        assert_close(got_grads[name], want_grads[name], TOLERANCE[dtype], f"{case}: gradient of {name}")


@pytest.mark.parametrize("config", ["plain", "everything", "everything_coupled"])
@pytest.mark.parametrize("engine", ENGINES)
def test_lstm_gradcheck(engine, config):
    case = lstm_case(T=3, B=3, H=2, seed=11, **{**CONFIGS[config], **({"P": 1} if "P" in CONFIGS[config] else {})})
    names = list(case.leaves())

    def run(*tensors):
        c = case._replace(xg=tensors[0], state=LSTMState(*tensors[1:3]),
                          weights=case.weights._replace(**dict(zip(names[3:], tensors[3:]))))
        return engine.lstm(c.xg, c.state, c.weights, c.masks, c.steps)[:3]

    inputs = [t.detach().clone().requires_grad_(True) for t in case.leaves().values()]
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["gru", "relu"])
@pytest.mark.parametrize("engine", ENGINES)
def test_gru_and_rnn_gradcheck(engine, kind):
    c = simple_case("gru" if kind == "gru" else "rnn", T=3, B=2, H=3, packed=True, reverse=True,
                    nonlinearity="relu", seed=12)
    run = engine.gru if c.kind == "gru" else engine.rnn
    tensors = [c.xg, c.h0] + [w for w in c.weights if isinstance(w, torch.Tensor)]

    def f(xg, h0, *weights):
        full = list(weights) + ([] if c.kind == "gru" else [c.weights.nonlinearity])
        return run(xg, h0, type(c.weights)(*full), c.steps)[:2]

    assert torch.autograd.gradcheck(f, [t.clone().requires_grad_(True) for t in tensors], eps=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Invariants of the recurrence, on generated cases (hypothesis), for every engine.

PROPERTY = settings(max_examples=12, deadline=None)
configs = st.sampled_from([name for name in CONFIGS if not CONFIGS[name].get("packed")
                           and not CONFIGS[name].get("reverse")])


def case_for(config, T, B, seed, **extra):
    return lstm_case(T=T, B=B, H=3, seed=seed, **{**CONFIGS[config], **({"P": 2} if "P" in CONFIGS[config] else {}),
                                                  **extra})


def close(a, b, what=""):
    assert_close(a.detach(), b.detach(), TOLERANCE[torch.float64], what)


def run(engine, case, **steps):
    return engine.lstm(case.xg, case.state, case.weights, case.masks, case.steps._replace(**steps))


def along_time(case, change):
    """The case with ``change`` applied to its per-step tensors (xg, zh, zc)."""
    zh, zc = (None if z is None else change(z) for z in case.masks[1:])
    return case._replace(xg=change(case.xg), masks=case.masks._replace(zh=zh, zc=zc))


@pytest.mark.parametrize("engine", ENGINES)
@PROPERTY
@given(configs, st.integers(1, 3), st.integers(0, 10**6))
def test_one_step_is_the_cell(engine, config, batch, seed):
    case = case_for(config, 1, batch, seed)
    y, h_n, c_n, gates, cells = run(engine, case)
    w, m = case.weights, case.masks
    s = lstm_cell(case.xg[0], case.state.h, case.state.c, None, w.w_hh, w_hr=w.w_hr, w_ci=w.w_ci, w_cf=w.w_cf,
                  w_co=w.w_co, ln_hh=w.ln_hh, ln_c_w=w.ln_c_w, ln_c_b=w.ln_c_b,
                  coupled=w.coupled(case.state.c.shape[1]), h_mask=m.h_mask,
                  zh=None if m.zh is None else m.zh[0], zc=None if m.zc is None else m.zc[0], eps=w.eps)
    close(y[0], s.h, "y")
    close(h_n, s.h, "h_n")
    close(c_n, s.c, "c_n")
    close(cells[0], s.c, "cells")
    close(gates[0, :, -case.state.c.shape[1]:], s.o, "o")


@pytest.mark.parametrize("engine", ENGINES)
@PROPERTY
@given(configs, st.integers(2, 7), st.integers(1, 3), st.integers(0, 10**6), st.data(), st.booleans())
def test_split_sequence_with_carried_state_is_one_pass(engine, config, steps, batch, seed, data, reverse):
    case = case_for(config, steps, batch, seed)
    cut = data.draw(st.integers(1, steps - 1))
    y, h_n, c_n, _, _ = run(engine, case, reverse=reverse)
    first, second = (slice(cut, None), slice(0, cut)) if reverse else (slice(0, cut), slice(cut, None))
    y1, h1, c1, _, _ = run(engine, along_time(case, lambda v: v[first]), reverse=reverse)
    y2, h2, c2, _, _ = run(engine, along_time(case, lambda v: v[second])._replace(state=LSTMState(h1, c1)),
                           reverse=reverse)
    close(torch.cat([y2, y1] if reverse else [y1, y2]), y, "y")
    close(h2, h_n, "h_n")
    close(c2, c_n, "c_n")


@pytest.mark.parametrize("engine", ENGINES)
@PROPERTY
@given(configs, st.integers(1, 6), st.integers(1, 3), st.integers(0, 10**6))
def test_reverse_is_flip_run_flip(engine, config, steps, batch, seed):
    case = case_for(config, steps, batch, seed)
    backwards, flipped = run(engine, case, reverse=True), run(engine, along_time(case, lambda v: v.flip(0)))
    for k, (a, b) in enumerate(zip(backwards, flipped)):
        close(a, b.flip(0) if k in (0, 3, 4) else b, RESULTS[k])


@pytest.mark.parametrize("engine", ENGINES)
@PROPERTY
@given(configs, st.integers(1, 5), st.integers(2, 4), st.integers(0, 10**6), st.randoms())
def test_permuting_the_batch_permutes_the_result(engine, config, steps, batch, seed, rnd):
    case = case_for(config, steps, batch, seed)
    order = list(range(batch))
    rnd.shuffle(order)
    perm = torch.tensor(order)
    rows = lambda v, dim: None if v is None else v.index_select(dim, perm)  # noqa: E731
    m = case.masks
    permuted = case._replace(xg=rows(case.xg, 1), state=LSTMState(*(rows(s, 0) for s in case.state)),
                             masks=Masks(rows(m.h_mask, 0), rows(m.zh, 1), rows(m.zc, 1)))
    for k, (a, b) in enumerate(zip(run(engine, case), run(engine, permuted))):
        close(a.index_select(1 if k in (0, 3, 4) else 0, perm), b, RESULTS[k])


@pytest.mark.parametrize("engine", ENGINES)
@PROPERTY
@given(configs, st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(0, 10**6), st.booleans())
def test_packed_batch_is_each_sequence_alone(engine, config, lengths, seed, reverse):
    """Outputs, final states and the gradients of xg, h0 and c0, row by row."""
    lengths = sorted(lengths, reverse=True)
    batch_sizes = tuple(sum(n > t for n in lengths) for t in range(lengths[0]))
    case = case_for(config, lengths[0], len(lengths), seed, batch_sizes=batch_sizes, reverse=reverse).with_leaves()
    y, h_n, c_n, _, _ = run(engine, case)
    gen = torch.Generator().manual_seed(seed)
    r_y, r_h, r_c = (torch.randn(v.shape, generator=gen, dtype=v.dtype) for v in (y, h_n, c_n))
    inputs = [case.xg, *case.state]
    grads = torch.autograd.grad((y * r_y).sum() + (h_n * r_h).sum() + (c_n * r_c).sum(), inputs)
    for b, n in enumerate(lengths):
        row = lambda v, per_step: None if v is None else (v[:n, b:b + 1] if per_step else v[b:b + 1])  # noqa
        m = case.masks
        alone = case._replace(xg=row(case.xg, True), state=LSTMState(*(row(s, False) for s in case.state)),
                              masks=Masks(row(m.h_mask, False), row(m.zh, True), row(m.zc, True)),
                              steps=Steps(None, reverse)).with_leaves()
        ya, ha, ca, _, _ = run(engine, alone)
        close(y[:n, b:b + 1], ya, f"y of row {b}")
        assert (y[n:, b] == 0).all(), "outputs past a sequence's end must be zero"
        close(h_n[b:b + 1], ha, f"h_n of row {b}")
        close(c_n[b:b + 1], ca, f"c_n of row {b}")
        g = torch.autograd.grad((ya * r_y[:n, b:b + 1]).sum() + (ha * r_h[b:b + 1]).sum()
                                + (ca * r_c[b:b + 1]).sum(), [alone.xg, *alone.state])
        close(grads[0][:n, b:b + 1], g[0], f"d xg of row {b}")
        assert (grads[0][n:, b] == 0).all()
        close(grads[1][b:b + 1], g[1], f"d h0 of row {b}")
        close(grads[2][b:b + 1], g[2], f"d c0 of row {b}")


# ---------------------------------------------------------------------------------------------
# The specification itself: the loop engine is the cell stepped by hand.

@pytest.mark.parametrize("config", ["plain", "everything", "everything_coupled"])
def test_the_loop_engine_is_the_cell_in_a_loop(config):
    case = lstm_case(seed=21, **CONFIGS[config])
    y, h_n, c_n, gates, cells = loop.lstm(case.xg, case.state, case.weights, case.masks, case.steps)
    w, m = case.weights, case.masks
    h, c = case.state
    order = range(case.xg.shape[0] - 1, -1, -1) if case.steps.reverse else range(case.xg.shape[0])
    for t in order:
        n = case.xg.shape[1] if case.steps.batch_sizes is None else case.steps.batch_sizes[t]
        s = lstm_cell(case.xg[t, :n], h[:n], c[:n], None, w.w_hh, w_hr=w.w_hr, w_ci=w.w_ci, w_cf=w.w_cf,
                      w_co=w.w_co, ln_hh=w.ln_hh, ln_c_w=w.ln_c_w, ln_c_b=w.ln_c_b, coupled=w.coupled(c.shape[1]),
                      h_mask=None if m.h_mask is None else m.h_mask[:n], zh=None if m.zh is None else m.zh[t, :n],
                      zc=None if m.zc is None else m.zc[t, :n], eps=w.eps)
        close(y[t, :n], s.h, f"y at {t}")
        close(cells[t, :n], s.c, f"cells at {t}")
        assert (y[t, n:] == 0).all()
        h, c = torch.cat([s.h, h[n:]]), torch.cat([s.c, c[n:]])
    close(h_n, h, "h_n")
    close(c_n, c, "c_n")
