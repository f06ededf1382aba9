"""lstmkit's layers against torch.nn's, loaded with the same weights: outputs, states, every gradient."""
import itertools
import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import lstmkit
from lstmkit import engines
from parity import assert_same_results

OURS = {"LSTM": lstmkit.LSTM, "GRU": lstmkit.GRU, "RNN_TANH": lstmkit.RNN, "RNN_RELU": lstmkit.RNN}
THEIRS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN}
INPUT, HIDDEN, STEPS, BATCH = 5, 6, 7, 4


def make_pair(mode, dtype, backend, num_layers=1, bidirectional=False, batch_first=False, proj_size=0):
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype)
    if mode == "LSTM":
        kwargs["proj_size"] = proj_size
    if mode.startswith("RNN"):
        kwargs["nonlinearity"] = mode[4:].lower()
    torch.manual_seed(0)
    theirs = THEIRS[mode](INPUT, HIDDEN, **kwargs)
    ours = OURS[mode](INPUT, HIDDEN, backend=backend, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def make_input(layout, dtype, batch_first):
    torch.manual_seed(1)
    if layout == "packed":
        lengths = [3, STEPS, 1, 5][:BATCH]
        return pack_sequence([torch.randn(n, INPUT, dtype=dtype) for n in lengths], enforce_sorted=False)
    if layout == "unbatched":
        return torch.randn(STEPS, INPUT, dtype=dtype)
    shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    return torch.randn(shape, dtype=dtype)


def make_state(mode, module, layout, dtype):
    rows = module.num_layers * (2 if module.bidirectional else 1)
    lead = (rows,) if layout == "unbatched" else (rows, BATCH)
    h = torch.randn(*lead, module.proj_size or HIDDEN, dtype=dtype)
    return (h, torch.randn(*lead, HIDDEN, dtype=dtype)) if mode == "LSTM" else h


def random_configs(count, seed=0):
    rng = random.Random(seed)
    space = list(itertools.product(
        ["LSTM", "LSTM", "GRU", "RNN_TANH", "RNN_RELU"], [1, 2, 3], [False, True], [False, True],
        ["batched", "packed", "unbatched"], [False, True], [torch.float64, torch.float32]))
    configs = rng.sample(space, count)
    # the corners every run must cover, whatever the sample
    configs += [("LSTM", 2, True, True, "packed", True, torch.float64),
                ("LSTM", 3, True, False, "batched", True, torch.float32),
                ("GRU", 2, True, True, "packed", True, torch.float64)]
    return configs


@pytest.mark.parametrize("backend", ["bptt", "native", "auto"])
@pytest.mark.parametrize("mode,layers,bidirectional,batch_first,layout,given_state,dtype", random_configs(18))
def test_layer_matches_torch(backend, mode, layers, bidirectional, batch_first, layout, given_state, dtype):
    proj = 3 if mode == "LSTM" and layers % 2 == 0 else 0
    ours, theirs = make_pair(mode, dtype, backend, layers, bidirectional, batch_first, proj)
    x = make_input(layout, dtype, batch_first)
    hx = make_state(mode, ours, layout, dtype) if given_state else None
    inputs = (x, hx) if given_state else (x,)
    assert_same_results(ours, theirs, *inputs)
    if backend == "auto":   # packed input goes to the cpu engine where it builds (faster than torch's)
        packed_engine = "cpu" if engines.cpu.why_not(ours.layer_spec(packed=True)) is None else "native"
        backend = packed_engine if layout == "packed" else "native"
    assert ours.last_backend == backend


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_same_seed_gives_same_weights_and_state_dicts_load_both_ways(mode):
    kwargs = {"nonlinearity": "tanh"} if mode == "RNN_TANH" else {}
    torch.manual_seed(3)
    theirs = THEIRS[mode](4, 8, num_layers=2, bidirectional=True, **kwargs)
    torch.manual_seed(3)
    ours = OURS[mode](4, 8, num_layers=2, bidirectional=True, **kwargs)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    fresh_torch = THEIRS[mode](4, 8, num_layers=2, bidirectional=True, **kwargs)
    fresh_torch.load_state_dict(ours.state_dict())
    fresh_ours = OURS[mode](4, 8, num_layers=2, bidirectional=True, **kwargs)
    fresh_ours.load_state_dict(theirs.state_dict())
    assert all(torch.equal(p, q) for p, q in zip(fresh_torch.parameters(), fresh_ours.parameters()))


def test_lstm_attributes_match_torch():
    ours, theirs = lstmkit.LSTM(3, 5, 2, proj_size=2), nn.LSTM(3, 5, 2, proj_size=2)
    for name in ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                 "bidirectional", "proj_size"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [[tuple(w.shape) for w in ws] for ws in ours.all_weights] == \
        [[tuple(w.shape) for w in ws] for ws in theirs.all_weights]
    ours.flatten_parameters()  # accepted like torch's


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("batched,given", [(True, True), (True, False), (False, True), (False, False)])
def test_cells_match_torch(cell, dtype, batched, given):
    torch.manual_seed(0)
    theirs = getattr(nn, cell)(INPUT, HIDDEN, dtype=dtype)
    torch.manual_seed(0)
    ours = getattr(lstmkit, cell)(INPUT, HIDDEN, dtype=dtype)
    assert all(torch.equal(p, q) for p, q in zip(theirs.parameters(), ours.parameters()))
    lead = (BATCH,) if batched else ()
    x = torch.randn(*lead, INPUT, dtype=dtype)
    h = torch.randn(*lead, HIDDEN, dtype=dtype)
    state = (h, torch.randn(*lead, HIDDEN, dtype=dtype)) if cell == "LSTMCell" else h
    assert_same_results(ours, theirs, *((x, state) if given else (x,)))
