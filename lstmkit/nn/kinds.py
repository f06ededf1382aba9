"""What differs between an LSTM, a GRU and an RNN layer; the layers share everything else.

One description per cell kind: its states, its parameters and how they start, the bias that
joins the input projection, and how one layer-direction's recurrence is handed to an engine
(with the masks only an LSTM draws). ``lstmkit.nn.layers`` composes a layer from one of these.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.engines.contract import GRUWeights, LSTMState, LSTMWeights, Masks, RNNWeights, Steps
from lstmkit.nn.cells import LSTMVariant, init_lstm_parameters, lstm_parameter_shapes

LAYER_NORM_EPS = 1e-5


class _Kind:
    mode: str            # torch's name for the op: LSTM, GRU, RNN_TANH, RNN_RELU
    gate_count: int      # rows of W_ih and W_hh per hidden unit
    has_cell = False     # an LSTM carries (h, c); the others h

    def state_sizes(self, hidden: int, proj: int) -> tuple[int, ...]:
        return (hidden,)

    def parameter_shapes(self, layer_input: int, hidden: int, proj: int, bias: bool,
                         variant: LSTMVariant | None) -> dict[str, tuple[int, ...]]:
        """Names (torch's, without the ``_l0`` suffix) and shapes, in torch.nn's registration order."""
        rows = self.gate_count * hidden
        shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, hidden)}
        if bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        return shapes

    @torch.no_grad()
    def initialize(self, params: dict[str, Tensor], hidden: int, variant: LSTMVariant | None) -> None:
        """torch.nn's initialisation: every tensor U(-1/√H, 1/√H), in registration order."""
        bound = 1.0 / math.sqrt(hidden)
        for weight in params.values():
            weight.uniform_(-bound, bound)

    def input_bias(self, p: dict[str, Tensor]) -> Tensor | None:
        """The bias added to the input projection: both biases, as they add up before any gate."""
        return p["bias_ih"] + p["bias_hh"] if "bias_ih" in p else None

    def finals(self, result) -> list[Tensor]:
        """The final states of one layer-direction's result, in the order the layer returns them."""
        return [result.h_n]


class LSTMKind(_Kind):
    mode, gate_count, has_cell = "LSTM", 4, True

    def state_sizes(self, hidden: int, proj: int) -> tuple[int, ...]:
        return (proj or hidden, hidden)

    def parameter_shapes(self, layer_input, hidden, proj, bias, variant):
        return lstm_parameter_shapes(layer_input, hidden, proj, bias, variant)

    def initialize(self, params, hidden, variant):
        init_lstm_parameters(params, hidden, variant)

    def run(self, engine, xg: Tensor, states: list[Tensor], p: dict[str, Tensor], steps: Steps,
            variant: LSTMVariant, training: bool):
        """One layer-direction on ``engine`` -> the engine's LSTMResult."""
        h0, c0 = states
        masks = _lstm_masks(variant, training, xg, h0.shape[-1], c0.shape[-1])
        weights = LSTMWeights(p["weight_hh"], p.get("weight_hr"), p.get("weight_ci"), p.get("weight_cf"),
                              p.get("weight_co"), p.get("ln_weight_hh"), p.get("ln_weight_c"),
                              p.get("ln_bias_c"), LAYER_NORM_EPS)
        return engine.lstm(xg, LSTMState(h0, c0), weights, masks, steps)

    def finals(self, result) -> list[Tensor]:
        return [result.h_n, result.c_n]

    def records(self, result, variant: LSTMVariant, steps: Steps) -> dict[str, Tensor]:
        """What ``lstmkit.trace`` keeps of one layer-direction: i, f, g, o, c, h per step."""
        return dict(_lstm_gates(result.gates, variant, steps), c=result.cells, h=result.y)


class GRUKind(_Kind):
    mode, gate_count = "GRU", 3

    def input_bias(self, p):
        return p.get("bias_ih")      # b_hn sits inside r ⊙ (W_hn h + b_hn): the engine adds b_hh

    def run(self, engine, xg, states, p, steps, variant, training):
        return engine.gru(xg, states[0], GRUWeights(p["weight_hh"], p.get("bias_hh")), steps)

    def records(self, result, variant, steps):
        r, z, n = result.gates.chunk(3, dim=-1)
        return {"r": r, "z": z, "n": n, "h": result.y}


class RNNKind(_Kind):
    gate_count = 1

    def __init__(self, nonlinearity: str) -> None:
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

    def run(self, engine, xg, states, p, steps, variant, training):
        return engine.rnn(xg, states[0], RNNWeights(p["weight_hh"], self.nonlinearity), steps)

    def records(self, result, variant, steps):
        return {"h": result.y}


KINDS = {kind.mode: kind for kind in (LSTMKind(), GRUKind(), RNNKind("tanh"), RNNKind("relu"))}


def _lstm_masks(variant: LSTMVariant, training: bool, xg: Tensor, out: int, hidden: int) -> Masks:
    """The constants one forward pass draws: recurrent dropout's mask, zoneout's masks."""
    steps, batch = xg.shape[:2]
    h_mask = None
    if variant.recurrent_dropout and training:                           # same mask every step
        keep = 1.0 - variant.recurrent_dropout
        h_mask = xg.new_empty(batch, out).bernoulli_(keep).div_(keep)    # (B, P)
    zh = _zoneout(variant.zoneout_h, training, xg, (steps, batch, out))  # (T, B, P)
    zc = _zoneout(variant.zoneout_c, training, xg, (steps, batch, hidden))
    return Masks(h_mask, zh, zc)


def _zoneout(rate: float, training: bool, like: Tensor, shape: tuple[int, ...]) -> Tensor | None:
    """Zoneout's keep-previous mask: Bernoulli(rate) while training, its mean ``rate`` in evaluation."""
    if not rate:
        return None
    if training:
        return like.new_empty(shape).bernoulli_(rate)
    return like.new_full((1, 1, 1), rate).expand(shape)


def _lstm_gates(gates: Tensor, variant: LSTMVariant, steps: Steps) -> dict[str, Tensor]:
    """Split the engine's gate activations (T, B, G·H) into i, f, g, o; CIFG's i is 1 - f."""
    if not variant.coupled_gates:
        return dict(zip("ifgo", gates.chunk(4, dim=-1)))
    f, g, o = gates.chunk(3, dim=-1)
    i = 1 - f
    if steps.batch_sizes is not None:  # rows past a sequence's end have no gates at all
        batch = f.shape[1]
        active = torch.arange(batch)[None, :] < torch.tensor(steps.batch_sizes)[:, None]  # (T, B)
        i = i * active.unsqueeze(-1).to(i)
    return {"i": i, "f": f, "g": g, "o": o}


def weight_dropped(p: dict[str, Tensor], variant: LSTMVariant | None, training: bool) -> dict[str, Tensor]:
    """A layer-direction's tensors with DropConnect applied to W_hh while training (AWD-LSTM)."""
    if variant is None or not variant.weight_drop or not training:
        return p
    return {**p, "weight_hh": F.dropout(p["weight_hh"], variant.weight_drop, True)}
