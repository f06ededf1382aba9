"""Every bad input gets a ValueError/TypeError naming what was expected and what came."""
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import lstmkit
from lstmkit.errors import BackendUnavailable


@pytest.fixture
def lstm():
    return lstmkit.LSTM(4, 6, num_layers=2)


@pytest.mark.parametrize("bad,error,match", [
    (torch.randn(2, 3, 4, 5), ValueError, "3 dimensions .*got 4 dimensions"),
    (torch.randn(4), ValueError, "got 1 dimensions"),
    (torch.randn(5, 3, 7), ValueError, "7 features .*input_size=4"),
    (torch.randn(0, 3, 4), ValueError, "empty sequence"),
    (torch.randn(5, 0, 4), ValueError, "empty batch"),
    (torch.randn(5, 3, 4, dtype=torch.float64), TypeError, "float64 but the module's weights are torch.float32"),
    (torch.ones(5, 3, 4, dtype=torch.int64), TypeError, "floating-point"),
    (torch.full((5, 3, 4), float("nan")), ValueError, "NaN or infinite"),
    ([[1.0, 2.0]], TypeError, "must be a torch.Tensor"),
])
def test_bad_input(lstm, bad, error, match):
    with pytest.raises(error, match=match):
        lstm(bad)


def test_finite_check_is_exact(lstm):
    """The finite check sums first: a sum that overflows must not reject finite input, and a
    single bad element, or +inf and -inf that cancel into NaN, must not slip through."""
    huge = torch.full((5, 3, 4), 3e38)                 # every element finite, the sum is inf
    assert lstm(huge)[0].isfinite().all()
    x = torch.randn(5, 3, 4)
    x[2, 1, 3] = float("inf")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first at index \(2, 1, 3\)\)"):
        lstm(x)
    x[2, 1, 2] = float("-inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        lstm(x)


def test_bad_states(lstm):
    x = torch.randn(5, 3, 4)
    with pytest.raises(TypeError, match=r"tuple \(h_0, c_0\)"):
        lstm(x, torch.zeros(2, 3, 6))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 3, 6\).*got \(1, 3, 6\)"):
        lstm(x, (torch.zeros(1, 3, 6), torch.zeros(2, 3, 6)))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 3, 6\).*got \(2, 4, 6\)"):
        lstm(x, (torch.zeros(2, 3, 6), torch.zeros(2, 4, 6)))
    with pytest.raises(TypeError, match="c_0 has dtype torch.float64"):
        lstm(x, (torch.zeros(2, 3, 6), torch.zeros(2, 3, 6, dtype=torch.float64)))
    with pytest.raises(ValueError, match="h_0 contains NaN"):
        lstm(x, (torch.full((2, 3, 6), float("inf")), torch.zeros(2, 3, 6)))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 6\)"):  # unbatched input, batched state
        lstm(x[:, 0], (torch.zeros(2, 3, 6), torch.zeros(2, 3, 6)))


def test_gru_state_is_a_tensor():
    gru = lstmkit.GRU(4, 6)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(1, 3, 6\)"):
        gru(torch.randn(5, 3, 4), torch.zeros(1, 6))


def test_packed_input_checks(lstm):
    packed = pack_sequence([torch.randn(3, 5), torch.randn(2, 5)])
    with pytest.raises(ValueError, match="5 features"):
        lstm(packed)


def test_device_mismatch_is_named(lstm):
    x = torch.randn(5, 3, 4, device="meta")
    with pytest.raises(ValueError, match="is on meta but the module's weights are on cpu"):
        lstm(x)


@pytest.mark.parametrize("kwargs,match", [
    (dict(hidden_size=0), "hidden_size must be an integer >= 1"),
    (dict(num_layers=0), "num_layers must be an integer >= 1"),
    (dict(dropout=1.5), "dropout must be a probability"),
    (dict(proj_size=6), "proj_size must be smaller than hidden_size"),
    (dict(backend="fast"), "backend must be one of"),
    (dict(zoneout=1.0), "zoneout must be a probability"),
    (dict(recurrent_dropout=-0.1), "recurrent_dropout must be a probability"),
])
def test_bad_constructor_arguments(kwargs, match):
    args = dict(input_size=4, hidden_size=6) | kwargs
    with pytest.raises(ValueError, match=match):
        lstmkit.LSTM(**args)


def test_gru_has_no_projection_and_rnn_checks_nonlinearity():
    with pytest.raises(TypeError):
        lstmkit.GRU(4, 6, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        lstmkit.RNN(4, 6, nonlinearity="sigmoid")


def test_native_refuses_variants_and_lists_what_it_supports():
    model = lstmkit.LSTM(4, 6, layer_norm=True, peephole=True, backend="native")
    with pytest.raises(BackendUnavailable, match="layer_norm.*standard LSTM, GRU and RNN"):
        model(torch.randn(5, 3, 4))


def test_native_refuses_training_time_zoneout_but_not_weight_drop():
    model = lstmkit.LSTM(4, 6, zoneout=0.1, backend="native")
    with pytest.raises(BackendUnavailable, match="zoneout"):
        model(torch.randn(5, 3, 4))
    dropped = lstmkit.LSTM(4, 6, weight_drop=0.5, backend="native")
    dropped(torch.randn(5, 3, 4))
    assert dropped.last_backend == "native"


@pytest.mark.parametrize("bad,state,match", [
    (torch.randn(3, 4, 5), None, "expects input of shape"),
    (torch.randn(3, 7), None, "7 features"),
    (torch.randn(0, 4), None, "empty batch"),
    (torch.randn(3, 4), (torch.zeros(3, 6),), "expects its state as 2 tensor"),
    (torch.randn(3, 4), (torch.zeros(2, 6), torch.zeros(3, 6)), r"must have shape \(3, 6\)"),
])
def test_cell_errors(bad, state, match):
    cell = lstmkit.LSTMCell(4, 6)
    with pytest.raises(ValueError, match=match):
        cell(bad, state)
