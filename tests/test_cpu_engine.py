"""The fused CPU engine (lstmkit.engines.cpu) against the reference engine, torch.nn and gradcheck.

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
from lstmkit.engines import bptt as reference, cpu
from lstmkit.engines.cpu import build
from lstmkit.errors import BackendUnavailable
from parity import TOLERANCE, assert_close, assert_same_results

DIFF = ("xg", "h0", "c0", "w_hh", "w_hr", "w_ci", "w_cf", "w_co", "ln_hh", "ln_c_w", "ln_c_b")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors on a shared machine: a second thread only adds waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def engine():
    ok, reason = cpu.is_available()
    if not ok:
        pytest.skip(f"cpu engine unavailable: {reason}")
    return cpu


def contract_args(T=5, B=3, H=6, P=0, dtype=torch.float64, coupled=False, peephole=False, ln=False,
                  mask=False, zoneout=False, packed=False, reverse=False, seed=0):
    """Random arguments of lstm_recurrence with the named variants switched on."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    G, out = (3 if coupled else 4), (P or H)
    sizes = None
    if packed:
        sizes = sorted(torch.randint(1, B + 1, (T,), generator=g).tolist(), reverse=True)
        sizes[0] = B
    return dict(
        xg=r(T, B, G * H), h0=r(B, out), c0=r(B, H), w_hh=0.5 * r(G * H, out), w_hr=0.5 * r(out, H) if P else None,
        w_ci=r(H) if peephole and not coupled else None, w_cf=r(H) if peephole else None,
        w_co=r(H) if peephole else None, ln_hh=1 + 0.1 * r(G * H) if ln else None,
        ln_c_w=1 + 0.1 * r(H) if ln else None, ln_c_b=0.1 * r(H) if ln else None,
        h_mask=(torch.rand(B, out, generator=g, dtype=dtype) > 0.3).to(dtype) / 0.7 if mask else None,
        zh=(torch.rand(T, B, out, generator=g, dtype=dtype) > 0.5).to(dtype) if zoneout else None,
        zc=torch.rand(T, B, H, generator=g, dtype=dtype) if zoneout else None,
        batch_sizes=sizes, reverse=reverse)


def run_engine(module, args):
    """Outputs (y, h_n, c_n, gates, c) and the gradients of every differentiable input."""
    a = {k: v.clone().requires_grad_(k in DIFF) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    outs = module.lstm_recurrence(**a)
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum() for o in outs[:3])
    loss.backward()
    return list(outs), {k: a[k].grad for k in DIFF if a[k] is not None}


CONFIGS = {
    "plain": {}, "coupled": dict(coupled=True), "peephole": dict(peephole=True), "layer_norm": dict(ln=True),
    "projection": dict(P=4), "mask": dict(mask=True), "zoneout": dict(zoneout=True),
    "packed": dict(packed=True), "reverse": dict(reverse=True),
    "packed_reverse_peephole": dict(packed=True, reverse=True, peephole=True),
    "everything": dict(P=4, peephole=True, ln=True, mask=True, zoneout=True, packed=True, reverse=True),
    "everything_coupled": dict(P=4, coupled=True, peephole=True, ln=True, mask=True, zoneout=True,
                               packed=True),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_reference_engine(engine, name, dtype):
    args = contract_args(dtype=dtype, **CONFIGS[name])
    (want, want_grads), (got, got_grads) = run_engine(reference, args), run_engine(engine, args)
    for what, a, b in zip(("y", "h_n", "c_n", "gates", "c"), got, want):
        assert_close(a, b, TOLERANCE[dtype], f"{name}: {what}")
    assert got_grads.keys() == want_grads.keys()
    for k in want_grads:
        assert_close(got_grads[k], want_grads[k], TOLERANCE[dtype], f"{name}: gradient of {k}")


@pytest.mark.parametrize("H", [32, 20])
@pytest.mark.parametrize("B", [1, 2, 3, 5, 16, 17])
@pytest.mark.parametrize("name", ["plain", "everything"])
def test_small_batch_gemm_path(engine, name, B, H):
    """On an AVX2 build, float32 batches up to 16 rows take the engine's skinny GEMM on W_hh packed
    into 16-column panels (one row: four panels at a time, wide_block), where the product's width is
    a multiple of 16; H=20 leaves one panel over at one row (G·H = 80) and a width of 20 in backward,
    which one row takes through the dot-product kernel. A packed batch's shrinking rows cross these
    bounds; 17 rows go to BLAS. All must match the reference engine."""
    config = {**CONFIGS[name], **({"P": 16} if "P" in CONFIGS[name] else {})}
    args = contract_args(T=4, B=B, H=H, dtype=torch.float32, **config)
    (want, want_grads), (got, got_grads) = run_engine(reference, args), run_engine(engine, args)
    for what, a, b in zip(("y", "h_n", "c_n", "gates", "c"), got, want):
        assert_close(a, b, 1e-5, f"B={B}: {what}")
    for k in want_grads:
        assert_close(got_grads[k], want_grads[k], 1e-5, f"B={B}: gradient of {k}")


def test_a_rows_result_does_not_depend_on_the_batch(engine):
    """float32 at up to 16 rows: every column of h @ W_hh^T sums over W_hh's row in one order, one
    row or many (wide_block, small_block), so a sequence's outputs and input gradients are the same
    bits alone as in a batch of 5."""
    args = contract_args(T=6, B=5, H=32, dtype=torch.float32, peephole=True)
    batch_args = {k: v.clone().requires_grad_(k in ("xg", "h0")) if isinstance(v, torch.Tensor) else v
                  for k, v in args.items()}
    y, h_n, c_n = cpu.lstm_recurrence(**batch_args)[:3]
    (y.square().sum() + h_n.sum()).backward()
    for b in (0, 3):
        row = {k: (v[:, b:b + 1] if k == "xg" else v[b:b + 1] if k in ("h0", "c0") else v)
               for k, v in args.items()}
        row = {k: v.clone().requires_grad_(k in ("xg", "h0")) if isinstance(v, torch.Tensor) else v
               for k, v in row.items()}
        y1, h1, c1 = cpu.lstm_recurrence(**row)[:3]
        (y1.square().sum() + h1.sum()).backward()
        assert torch.equal(y1[:, 0], y[:, b]) and torch.equal(h1[0], h_n[b]) and torch.equal(c1[0], c_n[b])
        assert torch.equal(row["xg"].grad[:, 0], batch_args["xg"].grad[:, b])
        assert torch.equal(row["h0"].grad[0], batch_args["h0"].grad[b])


@pytest.mark.parametrize("B", [1, 5])
def test_two_threads_give_the_same_bits(engine, B):
    """Threads split the engine's products by columns and its gate passes by rows; none of those
    splits a sum, so for the plain LSTM at up to 16 rows two threads give exactly one thread's
    outputs and gradients (H=256: the one-row product is split too). (BLAS products and the
    per-thread sums of peephole and norm gradients may round differently with another thread count.)"""
    args = contract_args(T=3, B=B, H=256, dtype=torch.float32)
    one = run_engine(engine, args)
    torch.set_num_threads(2)
    two = run_engine(engine, args)
    for a, b in zip(one[0], two[0]):
        assert torch.equal(a, b)
    for k in one[1]:
        assert torch.equal(one[1][k], two[1][k])


@pytest.mark.parametrize("name", ["everything", "everything_coupled"])
def test_two_threads_match_the_reference(engine, name):
    """With two threads the gate passes split the batch rows (H=256: 8 rows a thread) and the
    peephole and norm-gain gradients are summed per thread, then across threads: float64 results
    must still match the reference engine."""
    torch.set_num_threads(2)
    args = contract_args(T=3, B=20, H=256, dtype=torch.float64, **{**CONFIGS[name], "P": 16})
    (want, want_grads), (got, got_grads) = run_engine(reference, args), run_engine(engine, args)
    for what, a, b in zip(("y", "h_n", "c_n", "gates", "c"), got, want):
        assert_close(a, b, TOLERANCE[torch.float64], f"{name}: {what}")
    for k in want_grads:
        assert_close(got_grads[k], want_grads[k], TOLERANCE[torch.float64], f"{name}: gradient of {k}")


@pytest.mark.parametrize("name", ["plain", "everything", "everything_coupled"])
def test_gradcheck(engine, name):
    args = contract_args(T=3, B=2, H=3, **{**CONFIGS[name], **({"P": 2} if "P" in CONFIGS[name] else {})})
    names = [k for k in DIFF if args[k] is not None]

    def f(*tensors):
        a = {**args, **dict(zip(names, tensors))}
        return engine.lstm_recurrence(**a)[:3]

    inputs = [args[k].clone().requires_grad_(True) for k in names]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


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


def test_layer_with_every_option_trains_like_reference(engine):
    """Training mode, every variant and stochastic option on, packed: same masks (same seed), same
    outputs and parameter gradients as the reference engine through lstmkit.LSTM."""
    options = dict(num_layers=2, bidirectional=True, proj_size=3, layer_norm=True, peephole=True,
                   zoneout=0.1, recurrent_dropout=0.2, weight_drop=0.3, dropout=0.1, dtype=torch.float64)
    ours, ref = lstmkit.LSTM(4, 5, backend="cpu", **options), lstmkit.LSTM(4, 5, backend="reference", **options)
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


def test_torch_library_checks(engine):
    """Schema, autograd registration and fake (torch.compile) kernels, as torch checks custom ops."""
    args = contract_args(T=3, B=2, H=3, P=2, peephole=True, ln=True, zoneout=True)
    tensors = [args[k] for k in DIFF + ("h_mask", "zh", "zc")]
    for k, t in zip(DIFF, tensors):
        if t is not None:
            t.requires_grad_(True)
    torch.library.opcheck(torch.ops.lstmkit.lstm_forward.default,
                          (*tensors, args["batch_sizes"], args["reverse"], 1e-5))


def test_torchscript_calls_the_op(engine):
    @torch.jit.script
    def run(xg: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_hh: torch.Tensor):
        return torch.ops.lstmkit.lstm_forward(xg, h0, c0, w_hh, None, None, None, None, None, None, None,
                                              None, None, None, None, False, 1e-5)[0]

    args = contract_args()
    y = run(args["xg"], args["h0"], args["c0"], args["w_hh"])
    assert_close(y, reference.lstm_recurrence(**args)[0], 1e-10, "TorchScript y")


def test_bad_input_raises_instead_of_reading_out_of_bounds(engine):
    args = contract_args()
    args["h0"] = args["h0"][:, :4]
    with pytest.raises(RuntimeError, match="lstm_forward: w_hh must be"):
        engine.lstm_recurrence(**args)
    with pytest.raises(BackendUnavailable, match="float16"):
        engine.lstm_recurrence(**contract_args(dtype=torch.float16))
    assert cpu.why_not(lstmkit.GRU(3, 4)) is None
    assert "float16" in cpu.why_not(lstmkit.GRU(3, 4, dtype=torch.float16))


def test_bfloat16_within_its_tolerance(engine):
    """bfloat16 in and out, float32 inside: within bf16's 1e-2 of the float64 reference."""
    args = contract_args(peephole=True, ln=True, packed=True)
    want, want_grads = run_engine(reference, args)
    low = {k: v.to(torch.bfloat16) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    got, got_grads = run_engine(engine, low)
    assert got[0].dtype == torch.bfloat16 and got_grads["w_hh"].dtype == torch.bfloat16
    for what, a, b in zip(("y", "h_n", "c_n"), got, want):
        assert_close(a, b, 5e-2, f"bf16 {what}")
    for k in want_grads:
        assert_close(got_grads[k], want_grads[k], 5e-2, f"bf16 gradient of {k}")


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


def test_torch_compile_fullgraph(engine):
    args = contract_args()

    def f(xg, w_hh):
        return engine.lstm_recurrence(**{**args, "xg": xg, "w_hh": w_hh})[0]

    xg, w_hh = args["xg"].clone().requires_grad_(True), args["w_hh"].clone().requires_grad_(True)
    y = torch.compile(f, backend="aot_eager", fullgraph=True)(xg, w_hh)
    y.sum().backward()
    assert_close(y, reference.lstm_recurrence(**args)[0], 1e-10, "compiled y")
    assert xg.grad is not None and w_hh.grad is not None


@pytest.mark.parametrize("name", ["plain", "everything_coupled"])
def test_properties_split_permute_reverse(engine, name):
    """Split in two with the state carried = one pass; permuting the batch permutes the results;
    the reverse direction = flip, run forward, flip."""
    args = contract_args(T=6, B=4, **{**CONFIGS[name], "packed": False, "reverse": False})
    y, h_n, c_n, gates, c = engine.lstm_recurrence(**args)
    cut = lambda a, lo, hi: {**a, **{k: a[k][lo:hi] for k in ("xg", "zh", "zc") if a[k] is not None}}  # noqa: E731
    y1, h1, c1, *_ = engine.lstm_recurrence(**cut(args, 0, 2))
    y2, h2, c2, *_ = engine.lstm_recurrence(**{**cut(args, 2, 6), "h0": h1, "c0": c1})
    assert_close(torch.cat([y1, y2]), y, 1e-12, "split y")
    assert_close(h2, h_n, 1e-12, "split h_n")
    assert_close(c2, c_n, 1e-12, "split c_n")

    perm = torch.tensor([2, 0, 3, 1])
    per_row = {"xg": 1, "zh": 1, "zc": 1, "h0": 0, "c0": 0, "h_mask": 0}
    permuted = {**args, **{k: args[k].index_select(d, perm) for k, d in per_row.items() if args[k] is not None}}
    yp, hp, cp, gp, csp = engine.lstm_recurrence(**permuted)
    assert_close(yp, y[:, perm], 1e-12, "permuted y")
    assert_close(gp, gates[:, perm], 1e-12, "permuted gates")
    assert_close(hp, h_n[perm], 1e-12, "permuted h_n")

    flipped = {**args, **{k: args[k].flip(0) for k in ("xg", "zh", "zc") if args[k] is not None}}
    yr, hr, cr, *_ = engine.lstm_recurrence(**{**args, "reverse": True})
    yf, hf, cf, *_ = engine.lstm_recurrence(**flipped)
    assert_close(yr, yf.flip(0), 1e-12, "reverse y")
    assert_close(hr, hf, 1e-12, "reverse h_n")


# ------------------------------------------------------------------------------------------------
# GRU and RNN.

def simple_args(kind, T=5, B=3, H=4, dtype=torch.float64, packed=False, reverse=False, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    G = 3 if kind == "gru" else 1
    sizes = sorted(torch.randint(1, B + 1, (T,), generator=g).tolist(), reverse=True) if packed else None
    if sizes:
        sizes[0] = B
    args = dict(xg=r(T, B, G * H), h0=r(B, H), w_hh=0.5 * r(G * H, H))
    if kind == "gru":
        args["b_hh"] = r(G * H) if bias else None
    return {**args, "batch_sizes": sizes, "reverse": reverse}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", ["gru", "gru_nobias", "gru_packed_reverse", "tanh", "relu", "relu_packed_reverse"])
def test_gru_rnn_match_reference_engine(engine, case, dtype):
    kind = "gru" if case.startswith("gru") else "rnn"
    args = simple_args(kind, dtype=dtype, packed="packed" in case, reverse="reverse" in case,
                       bias="nobias" not in case)
    if kind == "rnn":
        args["nonlinearity"] = "relu" if case.startswith("relu") else "tanh"
    fn = "gru_recurrence" if kind == "gru" else "rnn_recurrence"
    results = []
    for module in (reference, engine):
        a = {k: v.clone().requires_grad_(True) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
        outs = getattr(module, fn)(**a)
        gen = torch.Generator().manual_seed(1)
        sum((o * torch.randn(o.shape, generator=gen, dtype=dtype)).sum() for o in outs[:2]).backward()
        results.append((outs, {k: v.grad for k, v in a.items() if isinstance(v, torch.Tensor)}))
    (want, want_g), (got, got_g) = results
    for k, (a, b) in enumerate(zip(got, want)):
        assert_close(a, b, TOLERANCE[dtype], f"{case}: output {k}")
    for k in want_g:
        assert_close(got_g[k], want_g[k], TOLERANCE[dtype], f"{case}: gradient of {k}")


@pytest.mark.parametrize("B", [3, 5])
@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_gru_rnn_small_batch_gemm_path(engine, kind, B):
    args = simple_args(kind, B=B, H=16, dtype=torch.float32, packed=True)
    fn = "gru_recurrence" if kind == "gru" else "rnn_recurrence"
    results = []
    for module in (reference, engine):
        a = {k: v.clone().requires_grad_(True) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
        outs = getattr(module, fn)(**a)
        outs[0].sum().backward()
        results.append(list(outs) + [v.grad for v in a.values() if isinstance(v, torch.Tensor)])
    for k, (a, b) in enumerate(zip(results[1], results[0])):
        assert_close(a, b, 1e-5, f"{kind}: result {k}")


@pytest.mark.parametrize("kind", ["gru", "relu"])
def test_gru_rnn_gradcheck(engine, kind):
    args = simple_args("gru" if kind == "gru" else "rnn", T=3, B=2, H=3, packed=True, reverse=True)
    names = [k for k in ("xg", "h0", "w_hh", "b_hh") if args.get(k) is not None]

    def f(*tensors):
        a = {**args, **dict(zip(names, tensors))}
        return cpu.gru_recurrence(**a)[:2] if kind == "gru" else cpu.rnn_recurrence(**a, nonlinearity="relu")

    assert torch.autograd.gradcheck(f, [args[k].clone().requires_grad_(True) for k in names], atol=1e-7)


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
        assert "simulated" in lstmkit.engines.registry.available()["cpu"]
        with pytest.raises(BackendUnavailable, match="simulated compiler failure"):
            cpu.lstm_recurrence(**contract_args())
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
