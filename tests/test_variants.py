"""The LSTM variants: gradients by gradcheck, values against the spec cells, initialisation, engines."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import lstmkit
from lstmkit import engines
from lstmkit.errors import BackendUnavailable
from parity import assert_same_results

VARIANTS = {
    "peephole": dict(peephole=True),
    "layer_norm": dict(layer_norm=True),
    "coupled": dict(coupled_gates=True),
    "projection": dict(proj_size=2),
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "zoneout": dict(zoneout=(0.4, 0.2)),
    "weight_drop": dict(weight_drop=0.3),
    "everything": dict(peephole=True, layer_norm=True, coupled_gates=True, proj_size=2,
                       recurrent_dropout=0.2, zoneout=0.3, weight_drop=0.2),
}


class Seeded(nn.Module):
    """Runs ``inner`` with the random masks drawn from a fixed seed, optionally on the loop engine
    (the specification) instead of its own."""

    def __init__(self, inner, oracle=False):
        super().__init__()
        self.inner, self.oracle = inner, oracle

    def forward(self, *args):
        torch.manual_seed(1234)
        own = self.inner.backend
        self.inner.backend = "loop" if self.oracle else own
        try:
            return self.inner(*args)
        finally:
            self.inner.backend = own


def make(kwargs, training, dtype=torch.float64, **layer_kwargs):
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 4, backend="bptt", dtype=dtype, **layer_kwargs, **kwargs)
    return model.train(training)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_matches_the_spec_cells(name, training):
    model = make(VARIANTS[name], training, num_layers=2, bidirectional=True)
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in (4, 6, 2)]
    for x in (torch.randn(6, 3, 3, dtype=torch.float64), pack_sequence(seqs, enforce_sorted=False)):
        assert_same_results(Seeded(model), Seeded(model, oracle=True), x)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_gradcheck(name):
    # one bidirectional layer keeps gradcheck's O(parameters) forward passes cheap; the layer
    # stacking itself is covered by the parity tests above
    model = Seeded(make(VARIANTS[name], training=True, bidirectional=True))
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    params = list(model.parameters())

    def run(x, *weights):
        with torch.nn.utils.stateless._reparametrize_module(
                model, dict(zip([n for n, _ in model.named_parameters()], weights))):
            y, (h, c) = model(x)
        return y, h, c

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6)


def test_float32_variants_match_float64_spec():
    # evaluation mode: the random masks of float32 and float64 tensors are not the same draws
    m64 = make(VARIANTS["everything"], training=False)
    m32 = make(VARIANTS["everything"], training=False, dtype=torch.float32)
    m32.load_state_dict(m64.state_dict())  # same weights, rounded to float32
    x = torch.randn(8, 3, 3, dtype=torch.float64)
    y64 = Seeded(m64, oracle=True)(x)[0]
    y32 = Seeded(m32)(x.float())[0]
    assert (y64 - y32.double()).abs().max().item() < 1e-5


def test_forget_bias_initialisation():
    model = lstmkit.LSTM(3, 4, forget_bias=1.0, num_layers=2)
    for layer in range(2):
        b_ih, b_hh = getattr(model, f"bias_ih_l{layer}"), getattr(model, f"bias_hh_l{layer}")
        assert torch.all(b_ih[4:8] == 1.0) and torch.all(b_hh[4:8] == 0.0)
        assert not torch.all(b_ih[:4] == 1.0)
    coupled = lstmkit.LSTM(3, 4, forget_bias=1.0, coupled_gates=True)
    assert torch.all(coupled.bias_ih_l0[:4] == 1.0)  # CIFG rows are f, g, o


def test_variant_parameters_have_torch_style_names_and_shapes():
    model = lstmkit.LSTM(3, 4, bidirectional=True, peephole=True, layer_norm=True, coupled_gates=True)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["weight_ih_l0"] == (12, 3) and shapes["weight_hh_l0_reverse"] == (12, 4)
    assert shapes["weight_cf_l0"] == (4,) and "weight_ci_l0" not in shapes
    assert shapes["ln_weight_hh_l0"] == (12,) and shapes["ln_bias_c_l0_reverse"] == (4,)
    assert torch.all(model.ln_weight_c_l0 == 1) and torch.all(model.ln_bias_c_l0 == 0)
    plain = nn.LSTM(3, 4, bidirectional=True)
    peep = lstmkit.LSTM(3, 4, bidirectional=True, peephole=True)
    missing = peep.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(f"weight_c{g}_l0{s}" for g in "ifo" for s in ("", "_reverse"))


FUSED = "cpu" if engines.cpu.why_not(lstmkit.LSTM(1, 1).layer_spec()) is None else "bptt"


@pytest.mark.parametrize("kwargs,training,expected", [
    ({}, True, "native"),
    (dict(weight_drop=0.5), True, "native"),
    (dict(recurrent_dropout=0.5), True, FUSED),
    (dict(recurrent_dropout=0.5), False, "native"),
    (dict(zoneout=0.1), False, FUSED),
    (dict(layer_norm=True), False, FUSED),
])
def test_auto_picks_native_then_the_cpu_engine_then_bptt(kwargs, training, expected):
    model = lstmkit.LSTM(3, 4, **kwargs).train(training)
    model(torch.randn(5, 2, 3))
    assert model.last_backend == expected
    if expected != "native":                              # a GPU model: the cpu engine cannot serve it
        assert engines.cpu.why_not(model.to("meta").layer_spec()) is not None
        assert engines.select(model.layer_spec(), "auto").name == "bptt"


def test_recurrent_dropout_and_zoneout_only_act_in_training():
    torch.manual_seed(0)
    plain = lstmkit.LSTM(3, 4, backend="bptt").eval()
    dropped = lstmkit.LSTM(3, 4, backend="bptt", recurrent_dropout=0.5, weight_drop=0.5).eval()
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(6, 2, 3)
    assert torch.equal(plain(x)[0], dropped(x)[0])
    assert not torch.equal(plain(x)[0], dropped.train()(x)[0])


def test_auto_takes_the_next_engine_when_one_fails_to_run_here(monkeypatch):
    """An engine that finds at run time that it cannot run here (a kernel that does not compile on
    this device) raises BackendUnavailable and declines from then on: auto warns once and the layer
    runs on the next engine; asked for by name, the error reaches the caller."""
    failed = []

    class Flaky:
        name, serves = "flaky", "nothing, as it turns out"

        @staticmethod
        def why_not(spec):
            return "it failed before" if failed else None

        @staticmethod
        def lstm(*args):
            failed.append(True)
            raise BackendUnavailable("the kernel did not compile for this device")

    monkeypatch.setitem(engines.ENGINES, "flaky", Flaky)
    monkeypatch.setattr(engines, "auto_order", lambda spec: ("flaky", "bptt"))
    torch.manual_seed(0)
    model = lstmkit.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    with pytest.warns(RuntimeWarning, match="flaky engine cannot run here .*did not compile"):
        y, _ = model(x)
    assert model.last_backend == "bptt" and failed == [True]
    spec = lstmkit.LSTM(3, 4, backend="loop")
    spec.load_state_dict(model.state_dict())
    assert torch.allclose(y, spec(x)[0], atol=1e-6)
    with pytest.raises(BackendUnavailable, match="flaky"):
        lstmkit.LSTM(3, 4, backend="flaky")(x)
