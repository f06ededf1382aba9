"""Tracing shows the gates the cell computed, for any engine, and costs nothing outside its block."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import lstmkit
from lstmkit.nn.cells import lstm_cell


def test_trace_returns_the_cells_gates_for_every_step():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, batch_first=True, backend="native", dtype=torch.float64)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    with lstmkit.trace(lstm) as t:
        y, _ = lstm(x)
    assert lstm.last_backend == "bptt"
    rec = t.get()
    p = lstm.direction_params(0, 0)
    h = c = torch.zeros(2, 4, dtype=torch.float64)
    for step in range(5):
        s = lstm_cell(x[:, step], h, c, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
        for name in "ifgoch":
            assert torch.allclose(getattr(rec, name)[:, step], getattr(s, name), atol=1e-12), name
        h, c = s.h, s.c
    assert torch.allclose(rec.h, y)
    assert rec.i.shape == (2, 5, 4)  # batch_first, like the layer


def test_trace_finds_layers_inside_a_model_and_needs_names_when_ambiguous():
    model = nn.Sequential(lstmkit.GRU(3, 4), nn.Identity())
    model.add_module("second", lstmkit.RNN(3, 4, num_layers=2, bidirectional=True))
    x = torch.randn(6, 2, 3)
    with lstmkit.trace(model) as t:
        model[0](x)
        model.second(x)
        model.second(x)
    assert set(t.get(module="0").tensors) == {"r", "z", "n", "h"}
    assert t.get(layer=1, direction="reverse").h.shape == (6, 2, 4)
    assert t.get(layer=1, direction="reverse", call=0).call == 0
    assert t.get(layer=1, direction="reverse").call == 1
    with pytest.raises(ValueError, match="several traced layers"):
        t.get(layer=0)
    with pytest.raises(LookupError, match="nothing was recorded"):
        t.get(layer=2, module="second")


def test_trace_of_packed_input_is_in_the_callers_order_with_zero_padding():
    lstm = lstmkit.LSTM(3, 4, coupled_gates=True)
    seqs = [torch.randn(2, 3), torch.randn(5, 3)]
    with lstmkit.trace(lstm) as t:
        lstm(pack_sequence(seqs, enforce_sorted=False))
    rec = t.get()
    assert rec.f.shape == (5, 2, 4)
    assert torch.all(rec.f[2:, 0] == 0) and torch.all(rec.i[2:, 0] == 0)
    assert torch.allclose(rec.i[:2, 0], 1 - rec.f[:2, 0])   # CIFG: i = 1 - f
    alone = lstmkit.LSTM(3, 4, coupled_gates=True)
    alone.load_state_dict(lstm.state_dict())
    with lstmkit.trace(alone) as t2:
        alone(seqs[0])
    assert torch.allclose(t2.get().f, rec.f[:2, 0], atol=1e-6)


def test_trace_ends_with_its_block_and_refuses_models_without_lstmkit_layers():
    lstm = lstmkit.LSTM(3, 4)
    with lstmkit.trace(lstm):
        pass
    assert lstm._trace_recorder is None
    lstm(torch.randn(4, 1, 3))
    assert lstm.last_backend == "native"
    with pytest.raises(ValueError, match="no lstmkit layer"):
        with lstmkit.trace(nn.LSTM(3, 4)):
            pass
