"""``model.step``: a loop of steps is one call on the whole sequence, on the fused step or not."""
import pytest
import torch

import lstmkit
from lstmkit import engines
from lstmkit.engines import cpu

needs_cpu_engine = pytest.mark.skipif(not cpu.is_available()[0], reason="the cpu engine cannot be built here")


def run_steps(model, x, state=None, batch_first=False):
    """Step through x (T, B, I) or (B, T, I) with batch_first; returns stacked outputs and the state."""
    steps = x.unbind(1 if batch_first else 0)
    outputs = []
    for x_t in steps:
        y_t, state = model.step(x_t, state)
        outputs.append(y_t)
    return torch.stack(outputs, 1 if batch_first else 0), state


def assert_steps_match_forward(model, x, state=None, batch_first=False, tol=1e-12):
    y, (h, c) = model(x, state)
    y_steps, (h_steps, c_steps) = run_steps(model, x, state, batch_first)
    for a, b in ((y_steps, y), (h_steps, h), (c_steps, c)):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= tol


@needs_cpu_engine
@pytest.mark.parametrize("layers,proj,batch_first,unbatched", [
    (1, 0, False, False), (3, 0, True, False), (2, 3, False, False), (2, 0, False, True)])
def test_fused_steps_equal_the_forward_pass(layers, proj, batch_first, unbatched):
    torch.manual_seed(0)
    model = lstmkit.LSTM(5, 8, layers, proj_size=proj, batch_first=batch_first, dtype=torch.float64).eval()
    x = torch.randn(2, 7, 5, dtype=torch.float64) if batch_first else torch.randn(7, 2, 5, dtype=torch.float64)
    if unbatched:
        x = x[:, 0]
    out = proj or 8
    batch = () if unbatched else (2,)
    state = (torch.randn(layers, *batch, out, dtype=torch.float64),
             torch.randn(layers, *batch, 8, dtype=torch.float64))
    with torch.no_grad():
        assert_steps_match_forward(model, x, state, batch_first)
        assert_steps_match_forward(model, x, None, batch_first)
    assert model.last_backend == "cpu"


@needs_cpu_engine
def test_fused_step_sees_new_weights():
    torch.manual_seed(0)
    model = lstmkit.LSTM(4, 6, 2).eval()
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        run_steps(model, x)                             # packs the weights
        with torch.enable_grad():                       # an optimizer step changes them in place
            model(x)[0].sum().backward()
            torch.optim.SGD(model.parameters(), lr=0.5).step()
        assert_steps_match_forward(model, x, tol=1e-5)
        model.load_state_dict(lstmkit.LSTM(4, 6, 2).state_dict())
        assert_steps_match_forward(model, x, tol=1e-5)
        model.weight_hh_l1 = torch.nn.Parameter(model.weight_hh_l1 * 0.5)   # a new Parameter object
        assert_steps_match_forward(model, x, tol=1e-5)
        model.double()
        assert_steps_match_forward(model, x.double())
    assert model.last_backend == "cpu"


@pytest.mark.parametrize("kwargs", [dict(peephole=True, layer_norm=True), dict(bidirectional=True),
                                    dict(zoneout=0.2), dict(coupled_gates=True, proj_size=2)])
def test_variants_step_through_forward(kwargs):
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 4, 2, dtype=torch.float64, **kwargs).eval()
    if kwargs.get("bidirectional"):     # a step of a bidirectional layer sees a one-step sequence
        x = torch.randn(1, 2, 3, dtype=torch.float64)
        y, state = model(x)
        y_t, state_t = model.step(x[0])
        assert torch.allclose(y_t, y[0]) and all(torch.allclose(a, b) for a, b in zip(state_t, state))
        return
    with torch.no_grad():
        assert_steps_match_forward(model, torch.randn(6, 2, 3, dtype=torch.float64))
        assert model.__dict__["_step_cache"]["stepper"] is None      # the fused step declined it
        assert model.last_backend == engines.select(model.layer_spec(), model.backend).name  # forward ran it


def test_steps_with_gradients_run_forward_and_back_propagate():
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 4, 2, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    y_steps, _ = run_steps(model, x)
    assert model.last_backend != "cpu" and y_steps.requires_grad
    (grad_steps,) = torch.autograd.grad(y_steps.sum(), model.weight_hh_l0)
    (grad_seq,) = torch.autograd.grad(model(x)[0].sum(), model.weight_hh_l0)
    assert (grad_steps - grad_seq).abs().max().item() < 1e-12


def test_gru_and_rnn_step_too():
    torch.manual_seed(0)
    for model in (lstmkit.GRU(3, 4, 2, dtype=torch.float64), lstmkit.RNN(3, 4, dtype=torch.float64)):
        x = torch.randn(5, 2, 3, dtype=torch.float64)
        y, h = model(x)
        state, outputs = None, []
        for x_t in x:
            y_t, state = model.step(x_t, state)
            outputs.append(y_t)
        assert torch.allclose(torch.stack(outputs), y) and torch.allclose(state, h)


def test_bad_step_input_gets_forwards_message():
    model = lstmkit.LSTM(3, 4)
    with torch.no_grad(), pytest.raises(ValueError, match="3"):
        model.step(torch.randn(2, 5))
    with torch.no_grad(), pytest.raises(ValueError):
        model.step(torch.randn(2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)))


@needs_cpu_engine
def test_continuing_a_loop_still_checks_what_changed():
    """The loop `y, state = lstm.step(x, state)` skips the full shape test (the state is the one the
    last fused step returned), but an input of another batch size, dtype, or with gradients wanted,
    still goes through forward's checks and engines."""
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 4).eval()
    with torch.no_grad():
        _, state = model.step(torch.randn(2, 3))
        _, state = model.step(torch.randn(2, 3), state)      # continues: the quick check passes
        with pytest.raises(ValueError):                       # 5 rows against a state of 2
            model.step(torch.randn(5, 3), state)
        with pytest.raises(TypeError, match="dtype"):         # float64 input, float32 weights
            model.step(torch.randn(2, 3, dtype=torch.float64), state)
    x = torch.randn(2, 3, requires_grad=True)
    y, _ = model.step(x, state)                                # gradients wanted: forward, not fused
    y.sum().backward()
    assert x.grad is not None and model.weight_hh_l0.grad is not None
