"""LSTM, GRU and RNN layers with torch.nn's exact interface, running on a chosen engine.

Same constructor arguments, parameter names, shapes, registration order and initialisation as
torch.nn.LSTM / GRU / RNN, so ``load_state_dict`` works both ways and the same seed gives the same
weights; same inputs and outputs (batched, unbatched, batch_first, PackedSequence, optional states).
A program replaces ``nn.LSTM`` with ``lstmkit.LSTM`` and nothing else changes: the layers also go
everywhere torch.nn's do (``torch.compile``, ``torch.export`` and ONNX, ``torch.jit.trace``, whole-model
``torch.save``/``torch.load(weights_only=True)``, deep copies).

What this module adds on top is the choice of engine (``backend=``, see ``lstmkit.engines``),
the LSTM variants of ``lstmkit.nn.cells`` as keyword options, and gate tracing (``lstmkit.trace``).
A layer is one stack of layer-directions; what differs between LSTM, GRU and RNN is described
once per cell kind in ``lstmkit.nn.kinds``.
"""
from __future__ import annotations

import warnings
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit import engines
from lstmkit.engines.contract import LayerSpec, Steps
from lstmkit.errors import BackendUnavailable
from lstmkit.nn.cells import LSTMVariant, PlainState, refuse_scripting
from lstmkit.nn.kinds import KINDS, LAYER_NORM_EPS, weight_dropped
from lstmkit.nn.sequence import Layout, from_time_major, states_in, states_out, to_time_major
from lstmkit.nn.stepping import fused_stepper, remember_step
from lstmkit.nn.validation import check_layer_input

# The engine of a layer built without ``backend=``: "auto", or what swap_into_torch(backend=...) chose.
DEFAULT_BACKEND: ContextVar[str] = ContextVar("lstmkit_default_backend", default="auto")


class RecurrentLayers(PlainState, nn.Module):
    """The shared body of LSTM, GRU and RNN: parameters, input handling, stacking and directions."""

    _not_pickled = ("_step_cache", "_trace_recorder")
    __prepare_scriptable__ = refuse_scripting

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None, *,
                 backend: str | None = None, variant: LSTMVariant | None = None) -> None:
        super().__init__()
        _check_sizes(mode, input_size, hidden_size, num_layers, dropout, proj_size)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.backend = engines.check_name(DEFAULT_BACKEND.get() if backend is None else backend)
        self.variant = variant
        self.last_backend: str | None = None
        self._trace_recorder = None  # set by lstmkit.trace while recording; None costs one check

        out_size = proj_size or hidden_size
        factory = {"device": device, "dtype": dtype}
        self._all_weights: list[list[str]] = []
        self._names: dict[tuple[int, int], dict[str, str]] = {}   # (layer, direction) -> stem -> name
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else out_size * self.num_directions
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                names = {}
                shapes = self.kind.parameter_shapes(layer_input, hidden_size, proj_size, bias, variant)
                for stem, shape in shapes.items():
                    names[stem] = stem + suffix
                    self.register_parameter(stem + suffix, nn.Parameter(torch.empty(shape, **factory)))
                self._names[(layer, direction)] = names
                self._all_weights.append(list(names.values()))
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------------------

    @property
    def kind(self):
        """What makes this an LSTM, a GRU or an RNN (``lstmkit.nn.kinds``)."""
        return KINDS[self.mode]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """torch.nn's initialisation, in registration order (plus the variants' own starts)."""
        for layer, direction in self._names:
            self.kind.initialize(self.direction_params(layer, direction), self.hidden_size, self.variant)

    def direction_params(self, layer: int, direction: int) -> dict[str, Tensor]:
        """The tensors of one layer and direction by their stem name (``weight_ih``, ``bias_hh``, ...)."""
        return {stem: getattr(self, name) for stem, name in self._names[(layer, direction)].items()}

    @property
    def all_weights(self) -> list[list[Tensor]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """Accepted for compatibility with torch.nn; lstmkit keeps its parameters as they are."""

    # -- forward ------------------------------------------------------------------------------

    def forward(self, input: Tensor | PackedSequence, hx=None, *, lengths: Tensor | None = None):
        """torch.nn's forward. ``lengths`` (B,) may come with a right-padded batch: the results are
        those of packing it (outputs zero past each sequence's end, final states at each end), in the
        padded layout, and unlike packing it records into exported graphs (torch.export, ONNX)."""
        check_layer_input(self, input, hx, lengths)
        if lengths is not None and not torch.compiler.is_exporting():
            return self._forward_padded(input, hx, lengths)
        recorder = self._trace_recorder
        spec = self.layer_spec(isinstance(input, PackedSequence))
        engine = engines.select(spec, self.backend, recording=recorder is not None)
        x, layout = to_time_major(input, self.batch_first, lengths)              # (T, B, I)
        states = self._initial_states(hx, layout, x)                             # each (L·D, B, S)
        try:
            y, finals = self._run_on(engine, x, states, layout, recorder)
        except BackendUnavailable as error:
            if self.backend != "auto" or recorder is not None:
                raise
            # an engine that found it cannot run here after all (a kernel that does not compile on
            # this device) says so once and declines from then on; auto takes the next one
            warnings.warn(f"lstmkit: the {engine.name} engine cannot run here ({error}); "
                          "using the next engine", RuntimeWarning, stacklevel=2)
            engine = engines.select(spec, "auto")
            y, finals = self._run_on(engine, x, states, layout, recorder)
        finals = [states_out(s, layout) for s in finals]
        return from_time_major(y, layout), (tuple(finals) if self.kind.has_cell else finals[0])

    def _run_on(self, engine, x: Tensor, states: list[Tensor], layout: Layout, recorder):
        self.last_backend = engine.name
        if hasattr(engine, "run_stack"):
            return engine.run_stack(self, x, states, layout, self._flat_weights_for_run())
        return self._run_stack(engine, x, states, layout, recorder)

    def _forward_padded(self, input: Tensor, hx, lengths: Tensor):
        """A padded batch with its lengths, run as the PackedSequence it is."""
        packed = pack_padded_sequence(input, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=False)
        output, state = self(packed, hx)
        total = input.shape[1 if self.batch_first else 0]
        return pad_packed_sequence(output, batch_first=self.batch_first, total_length=total)[0], state

    def layer_spec(self, packed: bool = False) -> LayerSpec:
        """What an engine is asked to run if this layer ran now."""
        weight = self.weight_ih_l0
        dtype = weight.dtype
        kind = weight.device.type
        if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
            dtype = torch.get_autocast_dtype(kind)                      # what the recurrence runs in
        return LayerSpec(self.mode, self.variant, dtype, weight.device, self.training, packed,
                         torch.compiler.is_compiling(),
                         torch.compiler.is_exporting() or torch.jit.is_tracing())

    def step(self, x_t: Tensor, state=None):
        """One time step: ``x_t`` (B, input_size) or (input_size,) -> ``(y_t, state)``.

        The same as ``self(x_t[None], state)`` with the time dimension taken away again (whatever
        ``batch_first`` is), so a loop of steps reproduces one call on the whole sequence. ``state``
        is what ``forward`` takes and returns; pass the returned one back for the next step.
        An LSTM that the cpu engine's fused step serves takes it (``lstmkit.nn.stepping``);
        anything else runs ``forward`` on a one-step sequence on the usual engine.
        """
        fast = fused_stepper(self, x_t, state) if self.mode == "LSTM" else None
        if fast is not None:
            self.__dict__["last_backend"] = "cpu"        # a plain attribute: skips Module.__setattr__
            y, state = fast(x_t, state)
            remember_step(self, x_t, state)
            return y, state
        time_dim = 1 if self.batch_first and x_t.dim() == 2 else 0
        y, state = self(x_t.unsqueeze(time_dim), state)
        return y.squeeze(time_dim), state

    def zero_states(self, batch, like: Tensor | None = None) -> list[Tensor]:
        """The states a sequence starts from: zeros (L·D, B, S) for h (and c), like ``like`` or the weights."""
        like = self.weight_ih_l0 if like is None else like
        rows = self.num_layers * self.num_directions
        return [like.new_zeros(rows, batch, size) for size in self.kind.state_sizes(self.hidden_size, self.proj_size)]

    def _initial_states(self, hx, layout: Layout, like: Tensor) -> list[Tensor]:
        """The caller's states, or zeros, as (L·D, B, S) tensors in the engines' row order."""
        if hx is None:
            return self.zero_states(layout.batch, like)
        states = list(hx) if self.kind.has_cell else [hx]
        return [states_in(s, layout) for s in states]

    def _direction_weights(self, layer: int, direction: int) -> dict[str, Tensor]:
        return weight_dropped(self.direction_params(layer, direction), self.variant, self.training)

    def _flat_weights_for_run(self) -> list[Tensor]:
        """Every layer-direction's tensors in torch's flat order, as a stack engine takes them."""
        return [w for layer, direction in self._names
                for w in self._direction_weights(layer, direction).values()]

    def _run_stack(self, engine, x: Tensor, states: list[Tensor], layout: Layout, recorder):
        """Every layer and direction on a recurrence engine -> (y (T, B, out), final states)."""
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                p = self._direction_weights(layer, direction)
                xg = input_projection(layer_input, p["weight_ih"], self.kind.input_bias(p),
                                      p.get("ln_weight_ih"))                       # (T, B, G·H)
                p, start = _like(xg, p), [s[k] if s.dtype == xg.dtype else s[k].to(xg.dtype) for s in states]
                steps = Steps(layout.batch_sizes, direction == 1, layout.lengths)
                result = self.kind.run(engine, xg, start, p, steps, self.variant, self.training)
                if recorder is not None:
                    recorder.record(self, layer, direction, layout,
                                    **self.kind.records(result, self.variant, steps))
                outputs.append(result.y)
                for collected, state in zip(finals, self.kind.finals(result)):
                    collected.append(state)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        return layer_input, [torch.stack(collected) for collected in finals]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.backend != "auto":
            s += f", backend={self.backend!r}"
        return s


def _like(xg: Tensor, p: dict[str, Tensor]) -> dict[str, Tensor]:
    """The recurrent tensors in xg's dtype. They differ under autocast, which runs the input
    projection in low precision and leaves the parameters float32; the engines compute in one dtype,
    as torch's own recurrent ops do there (autograd casts the gradients back)."""
    if p["weight_hh"].dtype == xg.dtype:
        return p
    return {name: w.to(xg.dtype) for name, w in p.items()}


def input_projection(x: Tensor, w_ih: Tensor, bias: Tensor | None, ln_weight: Tensor | None = None) -> Tensor:
    """All steps' input part as one matrix product: (T, B, I) -> (T, B, G·H).

    With the input layer norm, LN(x W^T)·γ + b is one op: no separate (T·B, G·H) mul and add."""
    steps, batch, _ = x.shape
    flat = x.reshape(steps * batch, -1)
    if ln_weight is not None:
        xg = F.layer_norm(flat @ w_ih.t(), (ln_weight.shape[0],), ln_weight, bias, eps=LAYER_NORM_EPS)
    elif bias is not None:
        xg = torch.addmm(bias, flat, w_ih.t())
    else:
        xg = flat @ w_ih.t()
    return xg.view(steps, batch, -1)


class LSTM(RecurrentLayers):
    """torch.nn.LSTM, transparent: same signature, weights and results, plus variants and engines.

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0, device=None, dtype=None, *, backend=None, peephole=False,
    layer_norm=False, coupled_gates=False, forget_bias=None, recurrent_dropout=0.0, zoneout=0.0,
    weight_drop=0.0)``

    ``backend=None`` takes the default, "auto" unless ``lstmkit.swap_into_torch(backend=...)``
    chose another. The variants and their sources are described in ``lstmkit.nn.cells``.
    ``zoneout`` is one rate for both states or a pair ``(cell, hidden)`` (Krueger et al. used 0.5
    and 0.05).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, backend: str | None = None,
                 peephole: bool = False, layer_norm: bool = False, coupled_gates: bool = False,
                 forget_bias: float | None = None, recurrent_dropout: float = 0.0,
                 zoneout: float | tuple[float, float] = 0.0, weight_drop: float = 0.0) -> None:
        zoneout_c, zoneout_h = zoneout if isinstance(zoneout, (tuple, list)) else (zoneout, zoneout)
        for name, rate in (("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout_c),
                           ("zoneout", zoneout_h), ("weight_drop", weight_drop)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {rate}")
        variant = LSTMVariant(peephole, layer_norm, coupled_gates, forget_bias, float(recurrent_dropout),
                              float(zoneout_c), float(zoneout_h), float(weight_drop))
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype, backend=backend, variant=variant)


class GRU(RecurrentLayers):
    """torch.nn.GRU with the same signature, weights and results; ``backend=`` picks the engine."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, backend: str | None = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, backend=backend)


class RNN(RecurrentLayers):
    """torch.nn.RNN (Elman, tanh or relu) with the same signature, weights and results."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None, *,
                 backend: str | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
                         backend=backend)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


def _check_sizes(mode, input_size, hidden_size, num_layers, dropout, proj_size) -> None:
    for name, value, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                             ("num_layers", num_layers, 1), ("proj_size", proj_size, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout <= 1) or isinstance(dropout, bool):
        raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
    if proj_size and mode != "LSTM":
        raise ValueError("proj_size is an LSTM option; GRU and RNN have no projection")
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(f"dropout={dropout} applies between stacked layers, so with num_layers=1 it does "
                      "nothing (as in torch.nn)", stacklevel=3)
