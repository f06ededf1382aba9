"""Invariants of the recurrence (DESIGN.md), checked through the layers on generated configurations,
for each engine (test_engines.py checks them on the engines alone)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

import lstmkit
from engine_cases import engine_params
from lstmkit.nn.cells import lstm_cell

TOL = 1e-10
FAST = settings(max_examples=12, deadline=None)

variants = st.fixed_dictionaries({
    "peephole": st.booleans(), "layer_norm": st.booleans(), "coupled_gates": st.booleans(),
})
modes = st.sampled_from(["LSTM", "GRU", "RNN"])


def build(mode, seed, input_size, hidden, backend, variant=None, **kwargs):
    torch.manual_seed(seed)
    cls = {"LSTM": lstmkit.LSTM, "GRU": lstmkit.GRU, "RNN": lstmkit.RNN}[mode]
    extra = variant or {} if mode == "LSTM" else {}
    return cls(input_size, hidden, backend=backend, dtype=torch.float64, **kwargs, **extra)


# every engine that runs layers; one that cannot be built here is skipped with its reason
ENGINES = engine_params("bptt", "native", "cpu", "loop")


def served(engine, variant):
    """The variant this engine is tested on: torch's fused op has none, the others serve every one."""
    return {name: False for name in variant} if engine.name == "native" else variant


def close(a, b):
    return (a - b).abs().max().item() <= TOL


@pytest.mark.parametrize("engine", ENGINES)
@FAST
@given(variant=variants, batch=st.integers(1, 4), seed=st.integers(0, 100))
def test_one_step_of_the_layer_is_the_cell(engine, variant, batch, seed):
    variant = served(engine, variant)
    layer = build("LSTM", seed, 3, 5, engine.name, variant)
    p = layer.direction_params(0, 0)
    x, h, c = (torch.randn(batch, n, dtype=torch.float64) for n in (3, 5, 5))
    y, (h1, c1) = layer(x[None], (h[None], c[None]))
    step = lstm_cell(x, h, c, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"],
                     w_ci=p.get("weight_ci"), w_cf=p.get("weight_cf"), w_co=p.get("weight_co"),
                     ln_ih=p.get("ln_weight_ih"), ln_hh=p.get("ln_weight_hh"),
                     ln_c_w=p.get("ln_weight_c"), ln_c_b=p.get("ln_bias_c"),
                     coupled=variant["coupled_gates"])
    assert close(y[0], step.h) and close(h1[0], step.h) and close(c1[0], step.c)
    assert layer.last_backend == engine.name


@pytest.mark.parametrize("engine", ENGINES)
@FAST
@given(mode=modes, variant=variants, steps=st.integers(2, 9), split=st.integers(1, 8),
       layers=st.integers(1, 2), seed=st.integers(0, 100))
def test_split_sequence_with_carried_state_is_one_pass(engine, mode, variant, steps, split, layers, seed):
    variant = served(engine, variant)
    split = min(split, steps - 1)
    layer = build(mode, seed, 3, 4, engine.name, variant, num_layers=layers)
    x = torch.randn(steps, 2, 3, dtype=torch.float64)
    whole, state = layer(x)
    first, mid = layer(x[:split])
    second, end = layer(x[split:], mid)
    assert close(torch.cat([first, second]), whole)
    for a, b in zip(end if mode == "LSTM" else (end,), state if mode == "LSTM" else (state,)):
        assert close(a, b)


@pytest.mark.parametrize("engine", ENGINES)
@FAST
@given(mode=modes, variant=variants, batch=st.integers(2, 5), seed=st.integers(0, 100),
       bidirectional=st.booleans())
def test_permuting_the_batch_permutes_the_result(engine, mode, variant, batch, seed, bidirectional):
    variant = served(engine, variant)
    layer = build(mode, seed, 3, 4, engine.name, variant, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(batch, 6, 3, dtype=torch.float64)
    order = torch.randperm(batch)
    y, _ = layer(x)
    y_perm, _ = layer(x[order])
    assert close(y_perm, y[order])


@pytest.mark.parametrize("engine", ENGINES)
@FAST
@given(mode=modes, variant=variants, seed=st.integers(0, 100))
def test_reverse_direction_is_flip_run_flip(engine, mode, variant, seed):
    variant = served(engine, variant)
    both = build(mode, seed, 3, 4, engine.name, variant, bidirectional=True)
    one = build(mode, seed, 3, 4, engine.name, variant)
    one.load_state_dict({k.replace("_reverse", ""): v for k, v in both.state_dict().items()
                         if k.endswith("_reverse")})
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    y, _ = both(x)
    y_flipped, _ = one(x.flip(0))
    assert close(y[..., 4:], y_flipped.flip(0))


@pytest.mark.parametrize("engine", ENGINES)
@FAST
@given(mode=modes, variant=variants, lengths=st.lists(st.integers(1, 7), min_size=1, max_size=5),
       seed=st.integers(0, 100), bidirectional=st.booleans())
def test_a_packed_batch_is_each_sequence_alone(engine, mode, variant, lengths, seed, bidirectional):
    variant = served(engine, variant)
    layer = build(mode, seed, 3, 4, engine.name, variant, bidirectional=bidirectional, num_layers=2)
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in lengths]
    out, state = layer(pack_sequence(seqs, enforce_sorted=False))
    padded, _ = pad_packed_sequence(out)
    h_n = state[0] if mode == "LSTM" else state
    for b, seq in enumerate(seqs):
        alone, alone_state = layer(seq)           # unbatched: (T, D*H)
        alone_h = alone_state[0] if mode == "LSTM" else alone_state
        assert close(padded[: len(seq), b], alone)
        assert close(h_n[:, b], alone_h)
        assert (padded[len(seq):, b] == 0).all()        # past a sequence's end: zero (empty when longest)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_engines_agree_on_float32(engine, mode):
    torch.manual_seed(0)
    spec = build(mode, 0, 8, 16, "loop", num_layers=2, bidirectional=True)
    x = torch.randn(20, 3, 8)
    expected = spec.float()(x)[0]
    other = build(mode, 0, 8, 16, engine.name, num_layers=2, bidirectional=True).float()
    assert (other(x)[0] - expected).abs().max().item() < 1e-5
    assert other.last_backend == engine.name
