"""lstmkit's layers go wherever torch.nn's go: whole-model save/load under torch's safe loader,
torch.compile, torch.export, ONNX (checked in onnxruntime) and torch.jit.trace, each compared with
the eager model's outputs (and gradients, where there are any).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.export import Dim

import lstmkit
from parity import assert_close

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The variants every path is checked with: (layer class, constructor options).
VARIANTS = {
    "plain": ("LSTM", {}), "proj_size": ("LSTM", dict(proj_size=3)), "bidirectional": ("LSTM", dict(bidirectional=True)),
    "layer_norm": ("LSTM", dict(layer_norm=True)), "peephole": ("LSTM", dict(peephole=True)),
    "coupled_zoneout": ("LSTM", dict(coupled_gates=True, zoneout=0.2)), "GRU": ("GRU", {}), "RNN": ("RNN", {}),
}
ENGINES = ["bptt", "native", "cpu", "auto"]


class Classifier(nn.Module):
    """A typical model around a recurrent layer: its last output through a linear head."""

    def __init__(self, layer: nn.Module, out: int):
        super().__init__()
        self.rnn, self.head = layer, nn.Linear(out, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


def model(variant: str, backend: str = "auto", dtype=torch.float32) -> Classifier:
    kind, options = VARIANTS[variant]
    torch.manual_seed(0)
    layer = getattr(lstmkit, kind)(5, 6, num_layers=2, batch_first=True, backend=backend, dtype=dtype, **options)
    out = (options.get("proj_size") or 6) * (2 if options.get("bidirectional") else 1)
    return Classifier(layer, out).to(dtype)


def skip_native_variant(variant, backend):
    if backend == "native" and VARIANTS[variant][0] == "LSTM" and variant not in ("plain", "proj_size", "bidirectional"):
        pytest.skip("torch's fused op has no variants (backend='native' refuses them)")


DYNAMIC = ({0: Dim("batch", max=64), 1: Dim("steps", max=512)},)
X = torch.randn(4, 7, 5)
OTHER_SHAPES = [(3, 9, 5), (1, 2, 5)]           # batch sizes and lengths other than the traced ones


# ---------------------------------------------------------------------------------------------
# torch.export and ONNX: the graph is the cell in a scan, whichever engine runs the model eagerly.

@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_torch_export_with_dynamic_batch_and_length(variant, strict):
    net = model(variant).eval()
    program = torch.export.export(net, (X,), dynamic_shapes=DYNAMIC, strict=strict)
    for shape in OTHER_SHAPES:
        x = torch.randn(*shape)
        assert_close(program.module()(x), net(x), 1e-5, f"{variant} at {shape}")


@pytest.mark.parametrize("backend", ENGINES)
def test_torch_export_is_the_same_graph_for_every_engine(backend):
    net = model("plain", backend).eval()
    program = torch.export.export(net, (X,), dynamic_shapes=DYNAMIC)
    assert any("scan" in str(node.target) for node in program.graph.nodes)
    x = torch.randn(*OTHER_SHAPES[0])
    assert_close(program.module()(x), net(x), 1e-5, backend)


def test_exported_program_saves_and_loads(tmp_path):
    net = model("layer_norm").eval()
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(net, (X,), dynamic_shapes=DYNAMIC), path)
    loaded = torch.export.load(path)
    x = torch.randn(*OTHER_SHAPES[0])
    assert_close(loaded.module()(x), net(x), 1e-5, "loaded program")


def onnx_session(net, args, dynamic_shapes):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install lstmkit[onnx])")
    program = torch.onnx.export(net, args, dynamic_shapes=dynamic_shapes, verbose=False)
    return ort.InferenceSession(program.model_proto.SerializeToString())


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnx_in_onnxruntime_matches_eager(variant):
    net = model(variant).eval()
    session = onnx_session(net, (X,), DYNAMIC)
    name = session.get_inputs()[0].name
    for shape in OTHER_SHAPES + [(2, 30, 5)]:
        x = torch.randn(*shape)
        got = torch.from_numpy(session.run(None, {name: x.numpy()})[0])
        assert_close(got, net(x).detach(), 1e-5, f"{variant} at {shape}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_streaming_step_exports_to_onnx(kind):
    """StepModule: (x_t, *state) -> (y_t, *state), a loop of which in onnxruntime is one pass of
    the layer over the sequence in eager torch."""
    torch.manual_seed(0)
    layer = getattr(lstmkit, kind)(5, 6, num_layers=2).eval()
    step = lstmkit.StepModule(layer)
    state = step.zero_state(2)
    batch = Dim("batch", max=64)
    session = onnx_session(step, (torch.randn(2, 5), *state),
                           ({0: batch},) + tuple({1: batch} for _ in state))
    names = [i.name for i in session.get_inputs()]
    x = torch.randn(8, 3, 5)
    want_y, want_state = layer(x)
    state = [s.numpy() for s in step.zero_state(3)]
    for t in range(x.shape[0]):
        y_t, *state = session.run(None, dict(zip(names, [x[t].numpy(), *state])))
        assert_close(torch.from_numpy(y_t), want_y[t].detach(), 1e-5, f"y at step {t}")
    for got, want in zip(state, want_state if kind == "LSTM" else (want_state,)):
        assert_close(torch.from_numpy(got), want.detach(), 1e-5, "final state")


# ---------------------------------------------------------------------------------------------
# torch.compile: the same outputs and gradients as eager; one graph wherever torch can trace the
# engine (torch's own CPU op with gradients runs eagerly between graphs, as torch.nn.LSTM does).

def outputs_and_grads(net, x):
    net.zero_grad()
    torch.manual_seed(1)                      # the same dropout masks in both runs
    out = net(x)
    (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
    return [out.detach()] + [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("backend", ENGINES)
def test_torch_compile_matches_eager(backend, variant):
    skip_native_variant(variant, backend)
    net = model(variant, backend).train()
    eager = outputs_and_grads(net, X)
    fullgraph = backend in ("cpu", "auto") and lstmkit.engines.cpu.is_available()[0]
    compiled = torch.compile(net, backend="aot_eager", fullgraph=fullgraph)
    for k, (a, b) in enumerate(zip(outputs_and_grads(compiled, X), eager)):
        assert_close(a, b, 1e-5, f"result {k}")


@pytest.mark.slow
def test_torch_compile_with_inductor():
    net = model("layer_norm").train()
    eager = outputs_and_grads(net, X)
    for k, (a, b) in enumerate(zip(outputs_and_grads(torch.compile(net), X), eager)):
        assert_close(a, b, 1e-4, f"result {k}")  # inductor's fused kernels sum in another order


# ---------------------------------------------------------------------------------------------
# torch.jit.trace: deprecated in the pinned torch, but it works, on the loop engine's ops.

@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("variant", ["plain", "layer_norm", "GRU"])
def test_jit_trace(backend, variant):
    skip_native_variant(variant, backend)
    net = model(variant, backend).eval()
    traced = torch.jit.trace(net, (X,), check_trace=False)
    assert_close(traced(X), net(X), 1e-5, "traced")


# ---------------------------------------------------------------------------------------------
# Whole models through torch.save / torch.load(weights_only=True).

SAVE = textwrap.dedent("""
    import sys, torch, lstmkit
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = {make}
            self.cell = nn.LSTMCell(4, 4)
            self.head = nn.Linear(4 * (2 if self.rnn.bidirectional else 1), 2)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.head(y[-1]) + self.cell(y[-1, :, :4])[0].sum()

    def build():
        torch.manual_seed(0)
        return Net().eval()
    """)

LOAD = textwrap.dedent("""
    x = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(1))
    allowed = [Net, torch.nn.modules.rnn.LSTM, torch.nn.modules.rnn.GRU, torch.nn.modules.rnn.LSTMCell,
               torch.nn.modules.linear.Linear]
    with torch.serialization.safe_globals(allowed):
        model = torch.load(sys.argv[1])                     # torch's default: weights_only=True
    torch.save(model(x), sys.argv[2])
    """)


def run_python(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("make", ["lstmkit.LSTM(3, 4, 2, layer_norm=True, bidirectional=True)",
                                  "lstmkit.GRU(3, 4, backend='bptt')",
                                  "lstmkit.LSTM(3, 4, peephole=True, zoneout=0.1)"])
def test_whole_model_loads_with_weights_only_in_a_fresh_process(tmp_path, make):
    save = SAVE.format(make=make) + textwrap.dedent("""
        model = build()
        torch.save(model, sys.argv[1])
        torch.save(model(torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(1))), sys.argv[2])
        """)
    done = run_python(save, tmp_path / "m.pt", tmp_path / "want.pt")
    assert done.returncode == 0, done.stderr
    loaded = run_python(SAVE.format(make=make) + LOAD, tmp_path / "m.pt", tmp_path / "y.pt")
    assert loaded.returncode == 0, loaded.stderr
    assert torch.equal(torch.load(tmp_path / "y.pt"), torch.load(tmp_path / "want.pt"))


def test_a_model_built_inside_swap_into_torch_loads_outside_it(tmp_path):
    """Inside the block nn.LSTM is lstmkit's class itself (the backend a default, not a new class),
    so the pickle names lstmkit's class and a program that allow-lists torch.nn's names loads it,
    inside the block or outside, in another process."""
    build_in_swap = SAVE.format(make="nn.LSTM(3, 4)").replace("def build():", "def build_plain():") + textwrap.dedent("""
        def build():
            with lstmkit.swap_into_torch(backend="bptt"):
                return build_plain()
        """)
    done = run_python(build_in_swap + "m = build()\nassert type(m.rnn) is lstmkit.LSTM and m.rnn.backend == 'bptt'\n"
                      "torch.save(m, sys.argv[1])\n", tmp_path / "m.pt")
    assert done.returncode == 0, done.stderr
    outside = run_python(build_in_swap + LOAD, tmp_path / "m.pt", tmp_path / "outside.pt")
    assert outside.returncode == 0, outside.stderr
    inside = run_python(build_in_swap + "with lstmkit.swap_into_torch():\n" + textwrap.indent(LOAD, "    "),
                        tmp_path / "m.pt", tmp_path / "inside.pt")
    assert inside.returncode == 0, inside.stderr
    assert torch.equal(torch.load(tmp_path / "outside.pt"), torch.load(tmp_path / "inside.pt"))


def test_the_safe_loader_still_refuses_other_globals(tmp_path):
    """lstmkit allow-lists its own classes only: a pickle naming os.system is still refused."""
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": lstmkit.LSTM(3, 4), "payload": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="os.system|system|Unsupported global"):
        torch.load(tmp_path / "evil.pt")


def test_pickles_hold_no_caches_and_round_trip_in_process():
    lstm = lstmkit.LSTM(3, 4, 2, layer_norm=True).eval()
    with torch.no_grad():
        lstm.step(torch.randn(3))                         # may build the fused step's cache
    import copy
    import io
    twin = copy.deepcopy(lstm)
    assert "_step_cache" not in twin.__dict__ or twin.__dict__["_step_cache"] is None
    buffer = io.BytesIO()
    torch.save(lstm, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    assert loaded.variant == lstm.variant
    x = torch.randn(6, 2, 3)
    assert torch.equal(loaded(x)[0], lstm(x)[0])


def test_swap_replaces_every_name_torch_exposes_and_restores_them():
    originals = {(place, name): getattr(place, name) for place in (nn, nn.modules, nn.modules.rnn)
                 for name in ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")}
    with lstmkit.swap_into_torch(backend="bptt"):
        for (place, name) in originals:
            assert getattr(place, name) is getattr(lstmkit, name), f"{place.__name__}.{name}"
        assert nn.LSTM(3, 4).backend == "bptt" and type(nn.LSTM(3, 4)) is lstmkit.LSTM
    for (place, name), original in originals.items():
        assert getattr(place, name) is original
    assert lstmkit.LSTM(3, 4).backend == "auto"
    with lstmkit.swap_into_torch(names=("LSTMCell",)):
        assert nn.LSTMCell is lstmkit.LSTMCell and nn.LSTM is originals[(nn, "LSTM")]
    with pytest.raises(ValueError, match="can swap"):
        with lstmkit.swap_into_torch(names=("Linear",)):
            pass


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                  # where pickle looks its classes up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_third_party_program_with_lstm_cells_saves_and_loads_swapped():
    """examples/sine_prediction.py (nn.LSTMCell, L-BFGS, then torch.save and a safe torch.load that
    allow-lists torch.nn.modules.rnn.LSTMCell) runs to its end inside swap_into_torch, to the same
    losses as with torch's cells."""
    example = load_example("sine_prediction")
    args = ["--steps", "2", "--hidden", "8", "--length", "60"]
    plain = example.main(args)
    with lstmkit.swap_into_torch():
        swapped = example.main(args)
    assert len(plain) == len(swapped) == 2
    for a, b in zip(plain, swapped):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a))


# ---------------------------------------------------------------------------------------------
# A padded batch with its lengths: what packing gives, and a form that records into graphs.

@pytest.mark.parametrize("backend", ENGINES + ["loop"])
def test_lengths_give_what_packing_gives(backend):
    torch.manual_seed(0)
    layer = lstmkit.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True, backend=backend)
    x, lengths = torch.randn(3, 7, 5), torch.tensor([4, 7, 1])
    y, (h, c) = layer(x, lengths=lengths)
    assert y.shape == (3, 7, 12)
    for b, n in enumerate(lengths.tolist()):
        alone, (h_b, c_b) = layer(x[b:b + 1, :n])
        assert_close(y[b:b + 1, :n], alone, 1e-6, f"row {b}")
        assert (y[b, n:] == 0).all()
        assert_close(h[:, b:b + 1], h_b, 1e-6, f"h of row {b}")
        assert_close(c[:, b:b + 1], c_b, 1e-6, f"c of row {b}")


def test_lengths_are_checked():
    layer = lstmkit.LSTM(5, 6, batch_first=True)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        layer(torch.randn(3, 7, 5), lengths=torch.tensor([4, 7]))
    with pytest.raises(ValueError, match="1..7"):
        layer(torch.randn(3, 7, 5), lengths=torch.tensor([4, 8, 1]))
    with pytest.raises(ValueError, match="padded batch"):
        layer(torch.randn(7, 5), lengths=torch.tensor([7]))


@pytest.mark.parametrize("variant", ["bidirectional", "layer_norm"])
def test_lengths_export_with_dynamic_shapes(variant):
    kind, options = VARIANTS[variant]
    torch.manual_seed(0)
    layer = lstmkit.LSTM(5, 6, num_layers=2, batch_first=True, **options).eval()

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x, lengths):
            y, (h, _) = self.layer(x, lengths=lengths)
            return y, h

    net = Padded()
    batch = Dim("batch", max=64)
    program = torch.export.export(net, (X, torch.tensor([7, 3, 5, 1])),
                                  dynamic_shapes=({0: batch, 1: Dim("steps", max=512)}, {0: batch}))
    x, lengths = torch.randn(3, 9, 5), torch.tensor([2, 9, 6])
    for got, want in zip(program.module()(x, lengths), net(x, lengths)):
        assert_close(got, want, 1e-5, variant)


def test_jit_script_says_to_use_torch_export():
    for module in (model("plain"), lstmkit.LSTMCell(3, 4)):
        with pytest.raises(RuntimeError, match="torch.export"):
            torch.jit.script(module)
