"""LSTM, GRU and RNN layers with torch.nn's exact interface, running on a chosen engine.

Same constructor arguments, parameter names, shapes, registration order and initialisation as
torch.nn.LSTM / GRU / RNN, so ``load_state_dict`` works both ways and the same seed gives the same
weights; same inputs and outputs (batched, unbatched, batch_first, PackedSequence, optional states).
A program replaces ``nn.LSTM`` with ``lstmkit.LSTM`` and nothing else changes.

What this module adds on top is the choice of engine (``backend=``, see ``lstmkit.backends``),
the LSTM variants of ``lstmkit.nn.cells`` as keyword options, and gate tracing (``lstmkit.trace``).
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from lstmkit.engines import registry as backends
from lstmkit.engines import native
from lstmkit.nn.cells import LSTMVariant, init_lstm_parameters, lstm_parameter_shapes
from lstmkit.errors import BackendUnavailable
from lstmkit.nn.sequence import Layout, from_time_major, states_in, states_out, to_time_major
from lstmkit.nn.validation import check_layer_input

LAYER_NORM_EPS = 1e-5


class RecurrentLayers(nn.Module):
    """The shared body of LSTM, GRU and RNN: parameters, input handling, stacking and directions."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None, *,
                 backend: str = "auto", variant: LSTMVariant | None = None) -> None:
        super().__init__()
        _check_sizes(mode, input_size, hidden_size, num_layers, dropout, proj_size)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.backend = backends.check_name(backend)
        self.variant = variant
        self.last_backend: str | None = None
        self._trace_recorder = None  # set by lstmkit.trace while recording; None costs one check

        directions = 2 if bidirectional else 1
        out_size = proj_size or hidden_size
        factory = {"device": device, "dtype": dtype}
        self._all_weights: list[list[str]] = []
        self._names: dict[tuple[int, int], dict[str, str]] = {}   # (layer, direction) -> stem -> name
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else out_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                names = {}
                for stem, shape in self._shapes(layer_input).items():
                    names[stem] = stem + suffix
                    self.register_parameter(stem + suffix, nn.Parameter(torch.empty(shape, **factory)))
                self._names[(layer, direction)] = names
                self._all_weights.append(list(names.values()))
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------------------

    def _shapes(self, layer_input: int) -> dict[str, tuple[int, ...]]:
        rows = {"GRU": 3}.get(self.mode, 1) * self.hidden_size
        shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, self.hidden_size)}
        if self.bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        return shapes

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every tensor U(-1/√H, 1/√H), in registration order."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for weight in self.parameters():
                weight.uniform_(-bound, bound)

    def direction_params(self, layer: int, direction: int) -> dict[str, Tensor]:
        """The tensors of one layer and direction by their stem name (``weight_ih``, ``bias_hh``, ...)."""
        return {stem: getattr(self, name) for stem, name in self._names[(layer, direction)].items()}

    @property
    def all_weights(self) -> list[list[Tensor]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """Accepted for compatibility with torch.nn; lstmkit keeps its parameters as they are."""

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    # -- forward ------------------------------------------------------------------------------

    def forward(self, input: Tensor | PackedSequence, hx=None):
        check_layer_input(self, input, hx)
        recorder = self._trace_recorder
        engine = backends.select(self, self.training, tracing=recorder is not None,
                                 packed=isinstance(input, PackedSequence))
        self.last_backend = engine
        if engine == "native":
            return self._forward_native(input, hx)
        return self._forward_recurrence(backends.recurrence_engine(engine), input, hx, recorder)

    def step(self, x_t: Tensor, state=None):
        """One time step: ``x_t`` (B, input_size) or (input_size,) -> ``(y_t, state)``.

        The same as ``self(x_t[None], state)`` with the time dimension taken away again (whatever
        ``batch_first`` is), so a loop of steps reproduces one call on the whole sequence. ``state``
        is what ``forward`` takes and returns; pass the returned one back for the next step.
        Generation and streaming call this in a loop: a unidirectional LSTM without structural
        variants, run without gradients (``torch.no_grad()`` or ``inference_mode``), takes the cpu
        engine's fused step (all layers in one C++ call, weights packed once and re-packed when they
        change); anything else runs ``forward`` on a one-step sequence on the usual engine.
        """
        fast = self._fast_stepper(x_t, state)
        if fast is not None:
            self.__dict__["last_backend"] = "cpu"        # a plain attribute: skips Module.__setattr__
            y, state = fast(x_t, state)
            self.__dict__["_step_cache"]["last"] = (state[0], state[1], x_t.shape, x_t.dtype)
            return y, state
        time_dim = 1 if self.batch_first and x_t.dim() == 2 else 0
        y, state = self(x_t.unsqueeze(time_dim), state)
        return y.squeeze(time_dim), state

    def _fast_stepper(self, x_t: Tensor, state):
        """The cpu engine's stepper when it can run this step exactly, else None (see ``step``)."""
        return None

    def _zero_states(self, batch: int, like: Tensor) -> list[Tensor]:
        rows = self.num_layers * self.num_directions
        sizes = [self.proj_size or self.hidden_size, self.hidden_size] if self.mode == "LSTM" \
            else [self.hidden_size]
        return [like.new_zeros(rows, batch, size) for size in sizes]

    def _forward_native(self, input, hx):
        packed = isinstance(input, PackedSequence)
        batched = packed or input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
        data = input.data if packed else input
        if hx is None:
            batch = int(input.batch_sizes[0]) if packed else input.shape[batch_dim]
            states = self._zero_states(batch, data)
        else:
            states = [hx[0], hx[1]] if self.mode == "LSTM" else [hx]
            states = [s if batched else s.unsqueeze(1) for s in states]
            if packed and input.sorted_indices is not None:
                states = [s.index_select(1, input.sorted_indices) for s in states]
        weights = self._flat_weights_for_run()
        output, result = native.run(self, input, tuple(states) if self.mode == "LSTM" else states[0],
                                    weights)
        finals = list(result) if self.mode == "LSTM" else [result]
        if packed and input.unsorted_indices is not None:
            finals = [s.index_select(1, input.unsorted_indices) for s in finals]
        if not batched:
            output = output.squeeze(batch_dim)
            finals = [s.squeeze(1) for s in finals]
        return output, (tuple(finals) if self.mode == "LSTM" else finals[0])

    def _flat_weights_for_run(self) -> list[Tensor]:
        """The parameters in torch's flat order, with DropConnect applied to W_hh when training."""
        drop = self.variant.weight_drop if self.variant is not None and self.training else 0.0
        weights = []
        for names in self._all_weights:
            for name in names:
                weight = getattr(self, name)
                if drop and name.startswith("weight_hh"):
                    weight = F.dropout(weight, drop, True)
                weights.append(weight)
        return weights

    def _forward_recurrence(self, engine, input, hx, recorder):
        x, layout = to_time_major(input, self.batch_first)                       # (T, B, I)
        if hx is None:
            states = self._zero_states(layout.batch, x)
        else:
            states = [hx[0], hx[1]] if self.mode == "LSTM" else [hx]
            states = [states_in(s, layout) for s in states]
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                y, *last = self._run_direction(engine, layer_input, [s[k] for s in states],
                                               layer, direction, layout, recorder)
                outputs.append(y)
                for collected, state in zip(finals, last):
                    collected.append(state)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        output = from_time_major(layer_input, layout)
        finals = [states_out(torch.stack(collected), layout) for collected in finals]
        return output, (tuple(finals) if self.mode == "LSTM" else finals[0])

    def _input_projection(self, x: Tensor, p: dict[str, Tensor], ln_weight: Tensor | None = None) -> Tensor:
        """All steps' input part as one matrix product: (T, B, I) -> (T, B, rows)."""
        steps, batch, _ = x.shape
        flat = x.reshape(steps * batch, -1)
        bias = None
        if "bias_ih" in p:
            bias = p["bias_ih"] if self.mode == "GRU" else p["bias_ih"] + p["bias_hh"]
        if ln_weight is not None:  # LN(x W^T)·γ + b as one op: no separate (T·B, G·H) mul and add
            xg = F.layer_norm(flat @ p["weight_ih"].t(), (ln_weight.shape[0],), ln_weight, bias,
                              eps=LAYER_NORM_EPS)
        elif bias is not None:
            xg = torch.addmm(bias, flat, p["weight_ih"].t())
        else:
            xg = flat @ p["weight_ih"].t()
        return xg.view(steps, batch, -1)

    def _run_direction(self, engine, x, states, layer, direction, layout, recorder):
        p = self.direction_params(layer, direction)
        xg = self._input_projection(x, p)
        reverse = direction == 1
        if self.mode == "GRU":
            y, h_n, gates = engine.gru_recurrence(xg, states[0], p["weight_hh"], p.get("bias_hh"),
                                                  layout.batch_sizes, reverse)
            if recorder is not None:
                r, z, n = gates.chunk(3, dim=-1)
                recorder.record(self, layer, direction, layout, r=r, z=z, n=n, h=y)
            return y, h_n
        y, h_n = engine.rnn_recurrence(xg, states[0], p["weight_hh"], self.nonlinearity,
                                       layout.batch_sizes, reverse)
        if recorder is not None:
            recorder.record(self, layer, direction, layout, h=y)
        return y, h_n

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


class LSTM(RecurrentLayers):
    """torch.nn.LSTM, transparent: same signature, weights and results, plus variants and engines.

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0, device=None, dtype=None, *, backend="auto", peephole=False,
    layer_norm=False, coupled_gates=False, forget_bias=None, recurrent_dropout=0.0, zoneout=0.0,
    weight_drop=0.0)``

    The variants and their sources are described in ``lstmkit.nn.cells``. ``zoneout`` is one rate
    for both states or a pair ``(cell, hidden)`` (Krueger et al. used 0.5 and 0.05).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, backend: str = "auto",
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

    def _fast_stepper(self, x_t: Tensor, state):
        if (self.backend not in ("auto", "cpu") or self._trace_recorder is not None
                or (self.training and (self.dropout or self.variant.stochastic(True)))):
            return None
        cache = self.__dict__.get("_step_cache")
        if not (self._continues_last_step(cache, x_t, state)
                or (x_t.is_cpu and x_t.dtype in (torch.float32, torch.float64)
                    and self._plain_step_shapes(x_t, state))):
            return None                          # forward runs it (and names what is wrong, if anything)
        if torch.is_grad_enabled() and (x_t.requires_grad or any(p.requires_grad for p in self.parameters())
                                        or (state is not None and any(s.requires_grad for s in state))):
            return None                                       # the fused step has no backward
        if cache is None:
            try:
                from lstmkit.engines.cpu.step import LSTMStepper
                cache = {"stepper": LSTMStepper(self), "key": None, "last": None}
            except (ImportError, BackendUnavailable):         # a variant, bidirectional, no compiler
                cache = {"stepper": None, "key": None, "last": None}
            self.__dict__["_step_cache"] = cache
        stepper = cache["stepper"]
        if stepper is None:
            return None
        # in-place updates (optimizer steps, load_state_dict) bump _version; .to()/.double() move data.
        # The module's own parameter dict (it has no submodules): 3x cheaper than self.parameters().
        key = [(p.data_ptr(), p._version) for p in self._parameters.values()]
        if key != cache["key"]:
            try:
                stepper.refresh()
            except BackendUnavailable:                    # moved to a device or dtype it does not serve
                return None
            cache["key"] = key
        return stepper if stepper.dtype == x_t.dtype else None

    @staticmethod
    def _continues_last_step(cache, x_t: Tensor, state) -> bool:
        """True when `state` holds the very tensors the last fused step returned and x_t has that
        step's shape and dtype (the loop `y, state = lstm.step(x, state)`): then the full shape test
        is known to pass, and ~2 of the ~5 µs the checks cost are skipped."""
        last = cache["last"] if cache is not None else None
        return (last is not None and type(state) is tuple and len(state) == 2
                and state[0] is last[0] and state[1] is last[1]
                and x_t.shape == last[2] and x_t.dtype == last[3] and x_t.is_cpu)

    def _plain_step_shapes(self, x_t: Tensor, state) -> bool:
        """x_t (B, I) or (I,), and a state of the shapes and dtype forward would accept with it.
        Written out test by test: it runs before every fused step, so it must cost a few µs."""
        batched = x_t.dim() == 2
        if not (batched or x_t.dim() == 1) or x_t.shape[-1] != self.input_size:
            return False
        if state is None:
            return True
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            return False
        h, c = state
        if not (isinstance(h, Tensor) and isinstance(c, Tensor)):
            return False
        lead = (self.num_layers, x_t.shape[0]) if batched else (self.num_layers,)
        return (h.shape == (*lead, self.proj_size or self.hidden_size) and c.shape == (*lead, self.hidden_size)
                and h.dtype == x_t.dtype and c.dtype == x_t.dtype
                and h.is_cpu and c.is_cpu)

    def _shapes(self, layer_input: int) -> dict[str, tuple[int, ...]]:
        return lstm_parameter_shapes(layer_input, self.hidden_size, self.proj_size, self.bias, self.variant)

    def reset_parameters(self) -> None:
        for layer, direction in self._names:
            init_lstm_parameters(self.direction_params(layer, direction), self.hidden_size, self.variant)

    def _run_direction(self, engine, x, states, layer, direction, layout, recorder):
        p, v = self.direction_params(layer, direction), self.variant
        xg = self._input_projection(x, p, p.get("ln_weight_ih"))                  # (T, B, G·H)
        steps, batch = x.shape[:2]
        out_size = self.proj_size or self.hidden_size
        w_hh = p["weight_hh"]
        if v.weight_drop and self.training:
            w_hh = F.dropout(w_hh, v.weight_drop, True)                          # DropConnect
        h_mask = None
        if v.recurrent_dropout and self.training:                                # same mask every step
            keep = 1.0 - v.recurrent_dropout
            h_mask = x.new_empty(batch, out_size).bernoulli_(keep).div_(keep)   # (B, P)
        zh = _zoneout(v.zoneout_h, self.training, x, (steps, batch, out_size))   # (T, B, P)
        zc = _zoneout(v.zoneout_c, self.training, x, (steps, batch, self.hidden_size))
        y, h_n, c_n, gates, cells = engine.lstm_recurrence(
            xg, states[0], states[1], w_hh, p.get("weight_hr"),
            p.get("weight_ci"), p.get("weight_cf"), p.get("weight_co"),
            p.get("ln_weight_hh"), p.get("ln_weight_c"), p.get("ln_bias_c"),
            h_mask, zh, zc, layout.batch_sizes, direction == 1, LAYER_NORM_EPS)
        if recorder is not None:
            recorder.record(self, layer, direction, layout, **_lstm_gates(gates, v, layout), c=cells, h=y)
        return y, h_n, c_n


class GRU(RecurrentLayers):
    """torch.nn.GRU with the same signature, weights and results; ``backend=`` picks the engine."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, backend: str = "auto") -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, backend=backend)


class RNN(RecurrentLayers):
    """torch.nn.RNN (Elman, tanh or relu) with the same signature, weights and results."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None, *,
                 backend: str = "auto") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
                         backend=backend)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


def _zoneout(rate: float, training: bool, like: Tensor, shape: tuple[int, ...]) -> Tensor | None:
    """Zoneout's keep-previous mask: Bernoulli(rate) while training, its mean ``rate`` in evaluation."""
    if not rate:
        return None
    if training:
        return like.new_empty(shape).bernoulli_(rate)
    return like.new_full((1, 1, 1), rate).expand(shape)


def _lstm_gates(gates: Tensor, variant: LSTMVariant, layout: Layout) -> dict[str, Tensor]:
    """Split the engine's gate activations (T, B, G·H) into i, f, g, o; CIFG's i is 1 - f."""
    if not variant.coupled_gates:
        return dict(zip("ifgo", gates.chunk(4, dim=-1)))
    f, g, o = gates.chunk(3, dim=-1)
    i = 1 - f
    if layout.batch_sizes is not None:  # rows past a sequence's end have no gates at all
        steps, batch = f.shape[:2]
        active = torch.arange(batch)[None, :] < torch.tensor(layout.batch_sizes)[:, None]  # (T, B)
        i = i * active.unsqueeze(-1).to(i)
    return {"i": i, "f": f, "g": g, "o": o}


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
