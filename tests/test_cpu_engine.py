"""What is particular to the fused CPU engine (lstmkit.engines.cpu): its product paths, threads, the
layers on it against torch.nn, its operator registration, the step API and its build. (Its agreement
with the specification, gradchecks and invariants are in test_engines.py, with every engine's.)

Every test but the fallback ones needs the compiled engine and is skipped, with the reason, where it
cannot be built (no compiler, no ninja). The first test to ask compiles it (about a minute, once;
later runs load the cached library).
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import lstmkit
from engine_cases import CONFIGS, lstm_case, run_lstm, run_simple, simple_case
from lstmkit.engines import bptt, cpu, loop
from lstmkit.engines.contract import LSTMState
from lstmkit.engines.cpu import build
from lstmkit.errors import BackendUnavailable
from parity import TOLERANCE, assert_close, assert_same_results


# tiny tensors: a second OpenMP thread only adds fork/join waits on a busy machine
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def engine():
    ok, reason = cpu.is_available()
    if not ok:
        pytest.skip(f"cpu engine unavailable: {reason}")
    return cpu


def assert_same_results_as(other, engine, case, tol, what=""):
    (want, want_grads), (got, got_grads) = run_lstm(other, case), run_lstm(engine, case)
    for name, a, b in zip(("y", "h_n", "c_n", "gates", "cells"), got, want):
        assert_close(a, b, tol, f"{what}{name}")
    assert got_grads.keys() == want_grads.keys()
    for k in want_grads:
        assert_close(got_grads[k], want_grads[k], tol, f"{what}gradient of {k}")


@pytest.mark.parametrize("H", [32, 20])
@pytest.mark.parametrize("B", [1, 2, 3, 5, 16, 17])
@pytest.mark.parametrize("name", ["plain", "everything"])
def test_small_batch_gemm_path(engine, name, B, H):
    """On an AVX2 build, float32 batches up to 16 rows take the engine's skinny GEMM on W_hh packed
    into 16-column panels (one row: four panels at a time, wide_block), where the product's width is
    a multiple of 16; H=20 leaves one panel over at one row (G·H = 80) and a width of 20 in backward,
    which one row takes through the dot-product kernel. A packed batch's shrinking rows cross these
    bounds; 17 rows go to BLAS. All must match the bptt engine."""
    config = {**CONFIGS[name], **({"P": 16} if "P" in CONFIGS[name] else {})}
    case = lstm_case(T=4, B=B, H=H, dtype=torch.float32, **config)
    assert_same_results_as(bptt, engine, case, 1e-5, f"B={B}: ")


def test_a_rows_result_does_not_depend_on_the_batch(engine):
    """float32 at up to 16 rows: every column of h @ W_hh^T sums over W_hh's row in one order, one
    row or many (wide_block, small_block), so a sequence's outputs and input gradients are the same
    bits alone as in a batch of 5."""
    case = lstm_case(T=6, B=5, H=32, dtype=torch.float32, peephole=True)
    xg, h0 = case.xg.clone().requires_grad_(True), case.state.h.clone().requires_grad_(True)
    y, h_n, c_n = cpu.lstm(xg, LSTMState(h0, case.state.c), case.weights)[:3]
    (y.square().sum() + h_n.sum()).backward()
    for b in (0, 3):
        xg1 = case.xg[:, b:b + 1].clone().requires_grad_(True)
        h1 = case.state.h[b:b + 1].clone().requires_grad_(True)
        y1, h_n1, c_n1 = cpu.lstm(xg1, LSTMState(h1, case.state.c[b:b + 1]), case.weights)[:3]
        (y1.square().sum() + h_n1.sum()).backward()
        assert torch.equal(y1[:, 0], y[:, b]) and torch.equal(h_n1[0], h_n[b]) and torch.equal(c_n1[0], c_n[b])
        assert torch.equal(xg1.grad[:, 0], xg.grad[:, b])
        assert torch.equal(h1.grad[0], h0.grad[b])


@pytest.mark.parametrize("B", [1, 5])
def test_two_threads_give_the_same_bits(engine, B):
    """Threads split the engine's products by columns and its gate passes by rows; none of those
    splits a sum, so for the plain LSTM at up to 16 rows two threads give exactly one thread's
    outputs and gradients (H=256: the one-row product is split too). (BLAS products and the
    per-thread sums of peephole and norm gradients may round differently with another thread count.)"""
    case = lstm_case(T=3, B=B, H=256, dtype=torch.float32)
    one = run_lstm(engine, case)
    torch.set_num_threads(2)
    two = run_lstm(engine, case)
    for a, b in zip(one[0], two[0]):
        assert torch.equal(a, b)
    for k in one[1]:
        assert torch.equal(one[1][k], two[1][k])


@pytest.mark.parametrize("name", ["everything", "everything_coupled"])
def test_two_threads_match_the_specification(engine, name):
    """With two threads the gate passes split the batch rows (H=256: 8 rows a thread) and the
    peephole and norm-gain gradients are summed per thread, then across threads: float64 results
    must still match the specification."""
    torch.set_num_threads(2)
    case = lstm_case(T=3, B=20, H=256, dtype=torch.float64, **{**CONFIGS[name], "P": 16})
    assert_same_results_as(loop, engine, case, TOLERANCE[torch.float64], f"{name}: ")


@pytest.mark.parametrize("options", [
    dict(), dict(num_layers=2, bidirectional=True), dict(proj_size=3), dict(batch_first=True, bias=False)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_layer_matches_torch_lstm(engine, options, dtype):
    torch.manual_seed(0)
    ours = lstmkit.LSTM(4, 5, backend="cpu", dtype=dtype, **options)
    theirs = nn.LSTM(4, 5, dtype=dtype, **options)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn((3, 6, 4) if options.get("batch_first") else (6, 3, 4), dtype=dtype)
    assert_same_results(ours, theirs, x)
    assert ours.last_backend == "cpu"


def test_packed_layer_matches_torch_lstm(engine):
    torch.manual_seed(0)
    ours = lstmkit.LSTM(4, 5, num_layers=2, bidirectional=True, backend="cpu", dtype=torch.float64)
    theirs = nn.LSTM(4, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    seqs = [torch.randn(n, 4, dtype=torch.float64) for n in (5, 3, 2)]
    assert_same_results(ours, theirs, pack_sequence(seqs))


def test_layer_with_every_option_trains_like_bptt(engine):
    """Training mode, every variant and stochastic option on, packed: same masks (same seed), same
    outputs and parameter gradients as the bptt engine through lstmkit.LSTM."""
    options = dict(num_layers=2, bidirectional=True, proj_size=3, layer_norm=True, peephole=True,
                   zoneout=0.1, recurrent_dropout=0.2, weight_drop=0.3, dropout=0.1, dtype=torch.float64)
    ours, ref = lstmkit.LSTM(4, 5, backend="cpu", **options), lstmkit.LSTM(4, 5, backend="bptt", **options)
    ref.load_state_dict(ours.state_dict())
    seqs = [torch.randn(n, 4, dtype=torch.float64) for n in (6, 4, 1)]
    results = []
    for model in (ours, ref):
        torch.manual_seed(3)
        y, (h, c) = model(pack_sequence(seqs))
        (y.data.sum() + h.sum() + c.sum()).backward()
        results.append([y.data, h, c] + [p.grad for p in model.parameters()])
    assert ours.last_backend == "cpu"
    for k, (a, b) in enumerate(zip(*results)):
        assert_close(a, b, 1e-10, f"result {k}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bias", [True, False])
def test_input_projection_matches_addmm(engine, dtype, bias):
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(12, 5, generator=g, dtype=dtype), torch.randn(16, 5, generator=g, dtype=dtype)
    b = torch.randn(16, generator=g, dtype=dtype) if bias else None
    results = []
    for fn in (lambda x, w, b: engine.input_projection(x, w, b),
               lambda x, w, b: torch.addmm(b, x, w.t()) if b is not None else x @ w.t()):
        leaves = [t.clone().requires_grad_(True) if t is not None else None for t in (x, w, b)]
        out = fn(*leaves)
        (out * torch.arange(out.numel(), dtype=dtype).view(out.shape).sin()).sum().backward()
        results.append([out] + [t.grad for t in leaves if t is not None])
    for k, (got, want) in enumerate(zip(*results)):
        assert_close(got, want, TOLERANCE[dtype], f"input projection result {k}")


def op_arguments(case):
    """The case as lstm_forward's positional arguments (the operator's schema)."""
    return (case.xg, *case.state, *case.weights[:-1], *case.masks,
            None if case.steps.batch_sizes is None else list(case.steps.batch_sizes), case.steps.reverse,
            case.weights.eps)


def test_torch_library_checks(engine):
    """Schema, autograd registration and fake (torch.compile) kernels, as torch checks custom ops."""
    case = lstm_case(T=3, B=2, H=3, P=2, peephole=True, ln=True, zoneout=True).with_leaves()
    torch.library.opcheck(torch.ops.lstmkit.lstm_forward.default, op_arguments(case))


def test_torchscript_calls_the_op(engine):
    @torch.jit.script
    def run(xg: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_hh: torch.Tensor):
        return torch.ops.lstmkit.lstm_forward(xg, h0, c0, w_hh, None, None, None, None, None, None, None,
                                              None, None, None, None, False, 1e-5)[0]

    case = lstm_case()
    y = run(case.xg, *case.state, case.weights.w_hh)
    assert_close(y, loop.lstm(case.xg, case.state, case.weights).y, 1e-10, "TorchScript y")


def test_bad_input_raises_instead_of_reading_out_of_bounds(engine):
    case = lstm_case()
    with pytest.raises(RuntimeError, match="lstm_forward: w_hh must be"):
        engine.lstm(case.xg, LSTMState(case.state.h[:, :4], case.state.c), case.weights)
    with pytest.raises(BackendUnavailable, match="device meta"):
        engine.lstm(case.xg.to("meta"), case.state, case.weights)
    assert cpu.why_not(lstmkit.GRU(3, 4).layer_spec()) is None
    assert "meta" in cpu.why_not(lstmkit.GRU(3, 4, device="meta").layer_spec())


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 5e-2), (torch.float16, 5e-3)], ids=["bf16", "f16"])
def test_16_bit_within_its_tolerance(engine, dtype, tol):
    """16-bit in and out (what autocast hands over), float32 inside: within the dtype's rounding of
    the float64 specification."""
    case = lstm_case(peephole=True, ln=True, packed=True)
    want, want_grads = run_lstm(loop, case)
    got, got_grads = run_lstm(engine, case.to(dtype=dtype))
    assert got[0].dtype == dtype and got_grads["w_hh"].dtype == dtype
    for what, a, b in zip(("y", "h_n", "c_n"), got, want):
        assert_close(a, b, tol, f"{dtype} {what}")
    for k in want_grads:
        assert_close(got_grads[k], want_grads[k], tol, f"{dtype} gradient of {k}")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_eager_path_equals_the_registered_op(engine, monkeypatch, kind):
    """Eager calls skip torch.library's autograd wrapper (cpu._call); the registered op, which
    torch.compile sees, must give the very same outputs and gradients."""
    torch.manual_seed(0)
    options = dict(dtype=torch.float64, **(dict(peephole=True, layer_norm=True) if kind == "LSTM" else {}))
    model = getattr(lstmkit, kind)(4, 5, num_layers=2, bidirectional=True, backend="cpu", **options)
    x = torch.randn(6, 3, 4, dtype=torch.float64)

    def run():
        model.zero_grad()
        y, _ = model(x)
        (y * torch.arange(y.numel(), dtype=y.dtype).view_as(y).cos()).sum().backward()
        return [y.detach()] + [p.grad.clone() for p in model.parameters()]

    eager = run()
    monkeypatch.setattr(cpu, "_BELOW_AUTOGRAD", None)            # every call through the registration
    for a, b in zip(eager, run()):
        assert torch.equal(a, b)


def test_torch_compile_fullgraph_matches_eager(engine):
    """The registered operator under torch.compile(fullgraph=True): the same outputs and the same
    gradients of every input as the eager engine."""
    case = lstm_case(P=2, peephole=True, ln=True, packed=True)

    def f(xg, h0, c0, w_hh, w_hr):
        weights = case.weights._replace(w_hh=w_hh, w_hr=w_hr)
        return engine.lstm(xg, LSTMState(h0, c0), weights, case.masks, case.steps)[:3]

    results = []
    for fn in (f, torch.compile(f, backend="aot_eager", fullgraph=True)):
        leaves = [t.clone().requires_grad_(True) for t in (case.xg, *case.state, case.weights.w_hh,
                                                           case.weights.w_hr)]
        y, h_n, c_n = fn(*leaves)
        (y.sin().sum() + h_n.sum() + c_n.square().sum()).backward()
        results.append([y, h_n, c_n] + [t.grad for t in leaves])
    for k, (a, b) in enumerate(zip(*results)):
        assert_close(b, a, 1e-10, f"compiled result {k}")


# ------------------------------------------------------------------------------------------------
# GRU and RNN.

@pytest.mark.parametrize("B", [3, 5])
@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_gru_rnn_small_batch_gemm_path(engine, kind, B):
    case = simple_case(kind, B=B, H=16, dtype=torch.float32, packed=True)
    (want, want_grads), (got, got_grads) = run_simple(bptt, case), run_simple(engine, case)
    for k, (a, b) in enumerate(zip(got, want)):
        assert_close(a, b, 1e-5, f"{kind}: result {k}")
    for name in want_grads:
        assert_close(got_grads[name], want_grads[name], 1e-5, f"{kind}: gradient of {name}")


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_gru_rnn_layers_match_torch(engine, kind):
    torch.manual_seed(0)
    options = dict(num_layers=2, bidirectional=True, dtype=torch.float64)
    ours = getattr(lstmkit, kind)(4, 5, backend="cpu", **options)
    theirs = getattr(nn, kind)(4, 5, **options)
    theirs.load_state_dict(ours.state_dict())
    seqs = [torch.randn(n, 4, dtype=torch.float64) for n in (5, 3, 2)]
    assert_same_results(ours, theirs, pack_sequence(seqs))
    assert_same_results(ours, theirs, torch.randn(6, 3, 4, dtype=torch.float64))
    assert ours.last_backend == "cpu"


# ------------------------------------------------------------------------------------------------
# The step API.

def assert_steps_match_sequence(model: nn.Module, x: torch.Tensor, tol: float) -> None:
    """LSTMStepper through x (T, B, I) one step at a time == the module on the whole sequence."""
    from lstmkit.engines.cpu.step import LSTMStepper

    with torch.no_grad():
        want_y, (want_h, want_c) = model(x)
    stepper, state = LSTMStepper(model), None
    for t in range(x.shape[0]):
        y_t, state = stepper(x[t], state)
        assert_close(y_t, want_y[t], tol, f"y at step {t}")
    assert_close(state[0], want_h, tol, "h_n")
    assert_close(state[1], want_c, tol, "c_n")


@pytest.mark.parametrize("options", [dict(num_layers=2), dict(num_layers=2, proj_size=3), dict(bias=False)])
def test_stepper_matches_full_sequence(engine, options):
    torch.manual_seed(0)
    assert_steps_match_sequence(nn.LSTM(4, 6, dtype=torch.float64, **options),
                                torch.randn(7, 2, 4, dtype=torch.float64), 1e-10)


@pytest.mark.parametrize("hidden", [16, 10])
@pytest.mark.parametrize("batch", [1, 2, 3, 5, 20])
@pytest.mark.parametrize("proj", [0, 5])
def test_stepper_float32_small_batches(engine, batch, proj, hidden):
    """float32 with 4H a multiple of 16 (H=16) steps on [W_ih | W_hh] packed into panels (wide_block
    at one row, small_block at more, also past 16 rows); H=10 keeps the matrix as it is (dot-product
    kernel up to 4 rows, then BLAS). Sizes with a k % 8 tail and (with proj_size 5) a projection
    whose row count is not a multiple of 4."""
    torch.manual_seed(batch)
    assert_steps_match_sequence(nn.LSTM(13, hidden, num_layers=2, proj_size=proj), torch.randn(6, batch, 13), 1e-5)


@pytest.mark.parametrize("shape", [(1024, 512), (48, 20), (64, 13), (16, 3)])
def test_step_weights_pack_into_16_column_panels(engine, shape):
    """pack_step_weights (the kernels' 8x8-transposing pack_panels) == torch's own view-transpose copy,
    k % 8 tails included; float64 and widths not a multiple of 16 stay as they are."""
    pack = build.module().pack_step_weights
    w = torch.randn(*shape)
    packed = pack(w)
    if "-mavx2" in build.compile_flags():
        assert torch.equal(packed, w.view(shape[0] // 16, 16, shape[1]).transpose(1, 2))
    assert torch.equal(pack(w.double()), w.double())
    assert torch.equal(pack(w[:-1]), w[:-1])


@pytest.mark.parametrize("hidden", [7, 8])
def test_direct_step_binding_equals_the_operator(engine, hidden):
    """The stepper calls the kernel through its own binding (no dispatcher); torch.ops.lstmkit.lstm_step
    (what torch.compile and TorchScript see) must give the very same numbers, with the weights as they
    are (H=7) and packed into panels (H=8). Without the dispatcher's device check, the kernel refuses
    non-CPU tensors itself."""
    from lstmkit.engines.cpu.step import LSTMStepper

    torch.manual_seed(0)
    stepper = LSTMStepper(nn.LSTM(5, hidden, num_layers=2, proj_size=3))
    x, (h, c) = torch.randn(2, 5), stepper.initial_state(2)
    h, c = h + 0.3, c - 0.2
    direct = stepper._step(x, h, c)
    operator = torch.ops.lstmkit.lstm_step(x, h, c, stepper._w_cat, stepper._bias, stepper._w_hr)
    for got, want in zip(direct, operator):
        assert torch.equal(got, want)
    if "-mavx2" in build.compile_flags():
        assert stepper._w_cat[0].dim() == (3 if hidden == 8 else 2)       # packed where 4H % 16 == 0
    with pytest.raises(RuntimeError, match="must be CPU tensors"):
        stepper._step(x.to("meta"), h, c)
    swapped = [stepper._w_cat[1], stepper._w_cat[0]]                       # layer 1's weights first
    with pytest.raises(RuntimeError, match="layer 0 needs pack_step_weights"):
        torch.ops.lstmkit.lstm_step(x, h, c, swapped, stepper._bias, stepper._w_hr)


def test_stepper_on_lstmkit_module_unbatched_and_refresh(engine):
    from lstmkit.engines.cpu.step import LSTMStepper

    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 5, num_layers=2)
    stepper = LSTMStepper(model)
    x = torch.randn(4, 3)
    with torch.no_grad():
        model.weight_hh_l1.mul_(0.5)                      # a change the stepper sees only after refresh
        want_y, _ = model(x.unsqueeze(1))
    stepper.refresh()
    state = None
    for t in range(4):
        y_t, state = stepper(x[t], state)
    assert y_t.shape == (5,) and state[0].shape == (2, 5)
    assert_close(y_t, want_y[-1, 0], 1e-5, "last y")
    with pytest.raises(BackendUnavailable, match="peephole"):
        LSTMStepper(lstmkit.LSTM(3, 5, peephole=True))
    with pytest.raises(BackendUnavailable, match="zoneout"):
        LSTMStepper(lstmkit.LSTM(3, 5, zoneout=0.1))


# ------------------------------------------------------------------------------------------------
# No compiler: the engine says why once, and the other backends carry on.

@pytest.fixture
def failing_build(monkeypatch):
    def broken(flags):
        # torch's message: its own "Error building extension" line, then ninja's and the compiler's output
        raise RuntimeError("Error building extension 'lstmkit_cpu_0': [1/2] c++ -c step.cpp -o step.o\n"
                           "FAILED: step.o\nstep.cpp:85:59: error: simulated compiler failure\n"
                           "ninja: build stopped: subcommand failed.")

    build.reset()
    monkeypatch.setattr(build, "_compile", broken)
    yield
    build.reset()


def test_failed_build_is_reported_once_and_falls_back(failing_build):
    with pytest.warns(RuntimeWarning, match="cpu engine is unavailable: compiling .* simulated compiler failure"):
        ok, reason = cpu.is_available()
    assert not ok and "step.cpp:85:59: error: simulated compiler failure" in reason   # the compiler's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # said once: no second warning
        assert cpu.is_available() == (False, reason)
        assert "simulated" in lstmkit.engines.available()["cpu"]
        with pytest.raises(BackendUnavailable, match="simulated compiler failure"):
            case = lstm_case()
            cpu.lstm(case.xg, case.state, case.weights)
        with pytest.raises(BackendUnavailable, match="simulated compiler failure"):
            lstmkit.LSTM(3, 4, backend="cpu")(torch.randn(2, 1, 3))
        model = lstmkit.LSTM(3, 4)                        # auto still runs, on another engine
        model(torch.randn(2, 1, 3))
        assert model.last_backend != "cpu"


def test_a_compiler_without_openmp_still_builds_the_engine(monkeypatch):
    """-fopenmp refused (clang without libomp, say): the engine is built without it, on one thread,
    and a warning says so and why; nothing else changes."""
    built = object()

    def no_openmp(flags):
        if "-fopenmp" in flags:
            raise RuntimeError("Error building extension 'x': c++ -fopenmp ...\nstep.cpp:1:10: fatal error: "
                               "omp.h: No such file or directory")
        return built

    build.reset()
    monkeypatch.setattr(build, "openmp_flags", lambda: ["-fopenmp"])
    monkeypatch.setattr(build, "_compile", no_openmp)
    try:
        with pytest.warns(RuntimeWarning, match="without OpenMP and runs on one thread .*omp.h"):
            assert build.load() == (True, "")
        assert build.module() is built
    finally:
        build.reset()


def test_missing_compiler_is_named(monkeypatch, failing_build):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found"):
        assert cpu.is_available()[0] is False
