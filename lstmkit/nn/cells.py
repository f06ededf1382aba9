"""The reference cells: the specification every other part of lstmkit runs or is tested against.

One step of an LSTM, in PyTorch's gate order i, f, g, o:

    i  = σ(W_ii x + b_ii + W_hi h + b_hi)     input gate: how much of the candidate enters memory
    f  = σ(W_if x + b_if + W_hf h + b_hf)     forget gate: how much of the long-term memory is kept
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)  candidate: what could be written to memory
    o  = σ(W_io x + b_io + W_ho h + b_ho)     output gate: how much of the memory is shown
    c' = f ⊙ c + i ⊙ g                        new cell state (long-term memory)
    h' = o ⊙ tanh(c')                         new hidden state (short-term memory, the output)

Variants are options of the same cell; with none switched on it is exactly torch.nn.LSTMCell.

- Peephole connections (Gers & Schmidhuber 2000, "Recurrent nets that time and count"):
  the gates also look at the cell: i and f add ``w_ci ⊙ c``, ``w_cf ⊙ c``; o adds ``w_co ⊙ c'``.
- Layer normalisation (Ba, Kiros & Hinton 2016, "Layer Normalization", §3.1):
  ``gates = LN(W_i x)·γ_ih + LN(W_h h)·γ_hh + b`` and ``h' = o ⊙ tanh(LN(c')·γ_c + β_c)``.
  The two gate norms carry a gain only: a shift would duplicate the biases b_ih, b_hh.
- Coupled input-forget gate, CIFG (Greff et al. 2017, "LSTM: A Search Space Odyssey"):
  no input gate of its own, ``i = 1 - f``; the gate rows are f, g, o (3H instead of 4H).
- Forget-gate bias initialisation (Jozefowicz, Zaremba & Sutskever 2015): start with f's bias at
  +1 so memory is kept by default early in training (an initialisation, see ``init_lstm_parameters``).
- Variational recurrent dropout (Gal & Ghahramani 2016): ``h`` is multiplied by a dropout mask that
  stays the same for every step of a sequence before it enters ``W_hh`` (``h_mask``).
- Zoneout (Krueger et al. 2017): each unit keeps its previous value with probability p,
  ``c_t = z_c ⊙ c_{t-1} + (1 - z_c) ⊙ c'``, ``h_t = z_h ⊙ h_{t-1} + (1 - z_h) ⊙ h'``
  (z a Bernoulli mask in training, its mean p in evaluation).
- DropConnect on the recurrent weights (Wan et al. 2013; AWD-LSTM's weight drop, Merity et al. 2018):
  ``W_hh`` itself is dropped once per forward pass; the cell simply receives the dropped matrix.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LSTMStep(NamedTuple):
    """One LSTM step: the new state and the gate activations that made it."""

    h: Tensor  # (B, P) hidden state: short-term memory, also the step's output
    c: Tensor  # (B, H) cell state: long-term memory
    i: Tensor  # (B, H) input gate (1 - f when the gates are coupled)
    f: Tensor  # (B, H) forget gate
    g: Tensor  # (B, H) candidate
    o: Tensor  # (B, H) output gate


def _layer_norm(x: Tensor, eps: float) -> Tensor:
    """Normalise the last dimension to zero mean and unit (biased) variance; gains are applied by the caller."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def lstm_cell(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor | None, w_hh: Tensor,
    b_ih: Tensor | None = None, b_hh: Tensor | None = None, *,
    w_hr: Tensor | None = None,
    w_ci: Tensor | None = None, w_cf: Tensor | None = None, w_co: Tensor | None = None,
    ln_ih: Tensor | None = None, ln_hh: Tensor | None = None,
    ln_c_w: Tensor | None = None, ln_c_b: Tensor | None = None,
    coupled: bool = False,
    h_mask: Tensor | None = None, zh: Tensor | None = None, zc: Tensor | None = None,
    eps: float = 1e-5,
) -> LSTMStep:
    """One LSTM step, written to be read. Shapes: x (B, I), h (B, P), c (B, H); P = proj or H.

    ``w_ih`` is (G·H, I) and ``w_hh`` (G·H, P) with G = 4 rows i, f, g, o (3 rows f, g, o when
    ``coupled``); ``w_ih=None`` means x already is the input part ``x @ w_ih.T`` (B, G·H), as the
    engines receive it. ``w_hr`` (P, H) projects h (Sak et al. 2014, torch's proj_size). Every other
    argument switches on one variant of the module docstring.
    """
    h_in = h if h_mask is None else h * h_mask                   # (B, P) variational dropout
    x_part = x if w_ih is None else x @ w_ih.T                   # (B, G·H)
    h_part = h_in @ w_hh.T                                       # (B, G·H)
    if ln_ih is not None:
        x_part = _layer_norm(x_part, eps) * ln_ih
    if ln_hh is not None:
        h_part = _layer_norm(h_part, eps) * ln_hh
    gates = x_part + h_part
    if b_ih is not None:
        gates = gates + b_ih + b_hh

    if coupled:
        a_f, a_g, a_o = gates.chunk(3, dim=-1)                   # (B, H) each
    else:
        a_i, a_f, a_g, a_o = gates.chunk(4, dim=-1)
    if w_cf is not None:                                         # peepholes look at the old cell
        a_f = a_f + w_cf * c
        if not coupled:
            a_i = a_i + w_ci * c

    f = torch.sigmoid(a_f)                    # forget gate: what of the long-term memory is kept
    i = 1 - f if coupled else torch.sigmoid(a_i)  # input gate: what of the candidate enters
    g = torch.tanh(a_g)                       # candidate memory
    c_new = f * c + i * g                     # new long-term memory, added pointwise
    if w_co is not None:                      # the output peephole looks at the new cell
        a_o = a_o + w_co * c_new
    o = torch.sigmoid(a_o)                    # output gate: what of the memory is shown

    c_shown = c_new if ln_c_w is None else _layer_norm(c_new, eps) * ln_c_w + ln_c_b
    h_new = o * torch.tanh(c_shown)           # new short-term memory, the step's output
    if w_hr is not None:
        h_new = h_new @ w_hr.T                # (B, P)

    c_next = c_new if zc is None else zc * c + (1 - zc) * c_new
    h_next = h_new if zh is None else zh * h + (1 - zh) * h_new
    return LSTMStep(h_next, c_next, i, f, g, o)


def gru_cell(x: Tensor, h: Tensor, w_ih: Tensor | None, w_hh: Tensor,
             b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One GRU step as torch.nn.GRUCell computes it (Cho et al. 2014), gate order r, z, n.

    ``w_ih=None``: x already is the input part (B, 3H). Returns the new hidden state (B, H) and
    the gates (B, 3H) = [r, z, n].
    """
    x_part = x if w_ih is None else x @ w_ih.T                   # (B, 3H)
    if b_ih is not None:
        x_part = x_part + b_ih
    h_part = h @ w_hh.T if b_hh is None else h @ w_hh.T + b_hh   # (B, 3H)
    x_r, x_z, x_n = x_part.chunk(3, dim=-1)
    h_r, h_z, h_n = h_part.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)              # reset gate: how much of the past feeds the candidate
    z = torch.sigmoid(x_z + h_z)              # update gate: how much of the old state is kept
    n = torch.tanh(x_n + r * h_n)             # candidate state
    h_next = (1 - z) * n + z * h
    return h_next, torch.cat([r, z, n], dim=-1)


def rnn_cell(x: Tensor, h: Tensor, w_ih: Tensor | None, w_hh: Tensor,
             b_ih: Tensor | None = None, b_hh: Tensor | None = None,
             nonlinearity: str = "tanh") -> Tensor:
    """One vanilla (Elman) RNN step: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, act tanh or relu.
    ``w_ih=None``: x already is the input part (B, H)."""
    a = (x if w_ih is None else x @ w_ih.T) + h @ w_hh.T
    if b_ih is not None:
        a = a + b_ih + b_hh
    return torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)


# ----------------------------------------------------------------------------------------------
# Parameters: one place that says which tensors an LSTM with given options has, and how they start.


@dataclass(frozen=True)
class LSTMVariant:
    """Which variants of the cell are on. All off (the default) is exactly torch.nn.LSTM."""

    peephole: bool = False
    layer_norm: bool = False
    coupled_gates: bool = False
    forget_bias: float | None = None     # initial forget-gate bias (Jozefowicz et al.: 1.0)
    recurrent_dropout: float = 0.0       # variational dropout on h before W_hh
    zoneout_c: float = 0.0
    zoneout_h: float = 0.0
    weight_drop: float = 0.0             # DropConnect on W_hh

    @property
    def gate_count(self) -> int:
        return 3 if self.coupled_gates else 4

    @property
    def structural(self) -> tuple[str, ...]:
        """Names of the options that change the recurrence itself (torch's fused op cannot run them)."""
        names = ["peephole", "layer_norm", "coupled_gates"]
        return tuple(n for n in names if getattr(self, n))

    def stochastic(self, training: bool) -> tuple[str, ...]:
        """Names of the step-level random options active now (weight drop is not one: any engine runs it)."""
        if not training:
            # in evaluation zoneout uses its expectation, which still changes the recurrence
            return tuple(n for n in ("zoneout_c", "zoneout_h") if getattr(self, n) > 0)
        return tuple(n for n in ("recurrent_dropout", "zoneout_c", "zoneout_h") if getattr(self, n) > 0)


def lstm_parameter_shapes(input_size: int, hidden_size: int, proj_size: int, bias: bool,
                          variant: LSTMVariant) -> dict[str, tuple[int, ...]]:
    """Names (torch's, without the ``_l0`` suffix) and shapes of one LSTM layer-direction's tensors.

    The order is torch.nn.LSTM's for the standard tensors, so the same seed gives the same weights.
    """
    gate_rows = variant.gate_count * hidden_size
    out_size = proj_size or hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "weight_ih": (gate_rows, input_size),
        "weight_hh": (gate_rows, out_size),
    }
    if bias:
        shapes["bias_ih"] = (gate_rows,)
        shapes["bias_hh"] = (gate_rows,)
    if proj_size:
        shapes["weight_hr"] = (proj_size, hidden_size)
    if variant.peephole:
        if not variant.coupled_gates:
            shapes["weight_ci"] = (hidden_size,)
        shapes["weight_cf"] = (hidden_size,)
        shapes["weight_co"] = (hidden_size,)
    if variant.layer_norm:
        shapes["ln_weight_ih"] = (gate_rows,)
        shapes["ln_weight_hh"] = (gate_rows,)
        shapes["ln_weight_c"] = (hidden_size,)
        shapes["ln_bias_c"] = (hidden_size,)
    return shapes


@torch.no_grad()
def init_lstm_parameters(params: dict[str, Tensor], hidden_size: int, variant: LSTMVariant) -> None:
    """torch.nn.LSTM's initialisation, U(-1/√H, 1/√H) in registration order, plus the variants'.

    Layer-norm gains start at 1 and shifts at 0 (an identity norm); the forget-gate bias, when
    asked for, is split as ``bias_ih[f] = forget_bias`` and ``bias_hh[f] = 0``.
    """
    bound = 1.0 / math.sqrt(hidden_size)
    for name, tensor in params.items():
        if name.startswith("ln_weight"):
            tensor.fill_(1.0)
        elif name.startswith("ln_bias"):
            tensor.zero_()
        else:
            tensor.uniform_(-bound, bound)
    if variant.forget_bias is not None and "bias_ih" in params:
        f_rows = slice(0, hidden_size) if variant.coupled_gates else slice(hidden_size, 2 * hidden_size)
        params["bias_ih"][f_rows] = variant.forget_bias
        params["bias_hh"][f_rows] = 0.0


# ----------------------------------------------------------------------------------------------
# torch.nn-compatible cell modules.


class PlainState:
    """Pickles as plain values: the variant as a dict, caches and recorders left out.

    So ``torch.save(model)`` gives a file that ``torch.load(weights_only=True)`` rebuilds once the
    module classes themselves are allow-listed (``lstmkit`` does that when it is imported), and a
    deep copy never copies a cache. Mixed in before ``nn.Module``."""

    _not_pickled: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        for name in self._not_pickled:
            state.pop(name, None)
        if isinstance(state.get("variant"), LSTMVariant):
            state["variant"] = dataclasses.asdict(state["variant"])
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if isinstance(state.get("variant"), dict):
            state["variant"] = LSTMVariant(**state["variant"])
        for name in self._not_pickled:
            state.setdefault(name, None)
        super().__setstate__(state)


def refuse_scripting(module: nn.Module):
    """torch.jit.script calls this before it compiles a module (and each of its submodules):
    lstmkit's modules choose engines and read options in Python, which TorchScript cannot hold."""
    raise RuntimeError(f"torch.jit.script cannot compile lstmkit's {type(module).__name__} (and TorchScript "
                       "is deprecated): use torch.export.export(model, (x,)) for a graph, or torch.jit.trace")


class _CellBase(PlainState, nn.Module):
    """Shared input handling of the cells: unbatched (I,) inputs and default zero states, as torch.nn."""

    __prepare_scriptable__ = refuse_scripting

    def _prepare(self, input: Tensor, states: tuple[Tensor, ...] | None, state_sizes: tuple[int, ...]):
        """Check the input and states, add a batch dimension to unbatched ones, default states to zeros."""
        from lstmkit.nn.validation import check_cell_input

        check_cell_input(self, input, states, state_sizes)
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
            states = None if states is None else tuple(s.unsqueeze(0) for s in states)
        if states is None:
            states = tuple(input.new_zeros(input.shape[0], size) for size in state_sizes)
        return input, states, batched


class LSTMCell(_CellBase):
    """torch.nn.LSTMCell with readable gates and the variants of this module's docstring.

    ``LSTMCell(input_size, hidden_size, bias=True, device=None, dtype=None, *, peephole=False,
    layer_norm=False, coupled_gates=False, forget_bias=None)``; forward ``(input, (h, c)) -> (h', c')``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None,
                 *, peephole: bool = False, layer_norm: bool = False, coupled_gates: bool = False,
                 forget_bias: float | None = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.variant = LSTMVariant(peephole=peephole, layer_norm=layer_norm,
                                   coupled_gates=coupled_gates, forget_bias=forget_bias)
        factory = {"device": device, "dtype": dtype}
        for name, shape in lstm_parameter_shapes(input_size, hidden_size, 0, bias, self.variant).items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_lstm_parameters(dict(self.named_parameters()), self.hidden_size, self.variant)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        sizes = (self.hidden_size, self.hidden_size)
        input, (h, c), batched = self._prepare(input, None if hx is None else tuple(hx), sizes)
        step = lstm_cell(input, h, c, self.weight_ih, self.weight_hh,
                         getattr(self, "bias_ih", None), getattr(self, "bias_hh", None),
                         coupled=self.variant.coupled_gates, **_variant_tensors(self))
        return (step.h, step.c) if batched else (step.h[0], step.c[0])

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


def _variant_tensors(module: nn.Module, suffix: str = "") -> dict[str, Tensor | None]:
    """The variant tensors of an LSTM (cell or layer-direction) as lstm_cell keyword arguments."""
    get = lambda name: getattr(module, name + suffix, None)  # noqa: E731
    return {"w_hr": get("weight_hr"), "w_ci": get("weight_ci"), "w_cf": get("weight_cf"),
            "w_co": get("weight_co"), "ln_ih": get("ln_weight_ih"), "ln_hh": get("ln_weight_hh"),
            "ln_c_w": get("ln_weight_c"), "ln_c_b": get("ln_bias_c")}


class _SimpleCell(_CellBase):
    """Shared body of GRUCell and RNNCell: torch.nn's parameters, initialisation and input handling."""

    gate_count = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.gate_count * hidden_size
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **factory))
            self.bias_hh = nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            weight.uniform_(-bound, bound)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (hx,), batched = self._prepare(input, None if hx is None else (hx,), (self.hidden_size,))
        h = self._step(input, hx)
        return h if batched else h[0]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class GRUCell(_SimpleCell):
    """torch.nn.GRUCell: same signature, parameters and results; the step is ``gru_cell``."""

    gate_count = 3

    def _step(self, x: Tensor, h: Tensor) -> Tensor:
        return gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)[0]


class RNNCell(_SimpleCell):
    """torch.nn.RNNCell (tanh or relu): same signature, parameters and results; the step is ``rnn_cell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def _step(self, x: Tensor, h: Tensor) -> Tensor:
        return rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)
