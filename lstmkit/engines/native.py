"""The native engine: torch's own fused recurrent ops (oneDNN on CPU, cuDNN on GPU).

It runs a whole stack at once, so it takes the layer's flat weights in torch.nn's order per layer
and direction (``w_ih, w_hh, [b_ih, b_hh], [w_hr]``, the order lstmkit registers them in) instead of
one layer-direction's recurrence.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.engines.contract import LayerSpec

name = "native"
serves = ("the standard LSTM, GRU and RNN (tanh/relu) with num_layers, bias, batch_first, dropout, "
          "bidirectional, proj_size, packed input and weight_drop")

_OPS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


def why_not(spec: LayerSpec) -> str | None:
    if spec.device.type == "cpu" and spec.dtype == torch.float16:
        return "torch's CPU op has no float16 kernel (oneDNN refuses it)"
    if spec.variant is not None:
        unsupported = spec.variant.structural + spec.variant.stochastic(spec.training)
        if unsupported:
            return f"it does not implement {', '.join(unsupported)}"
    return None


def run_stack(layer, x: Tensor, states: list[Tensor], layout, flat_weights: list[Tensor]):
    """The whole stack on the time-major input ``x`` (T, B, I) -> (y (T, B, out), final states).

    A packed input runs on its packed data (torch's op skips the padding itself); the output comes
    back padded, in the layout every engine returns.
    """
    if torch.compiler.is_compiling() and layer.training and x.device.type == "cpu":
        # torch.compile cannot trace the CPU op with gradients (it decomposes into oneDNN's
        # mkldnn_rnn_layer): it runs eagerly between two graphs, as torch.nn.LSTM does there
        return _run_eagerly(layer, x, states, layout, flat_weights)
    return _run(layer, x, states, layout, flat_weights)


def _run(layer, x: Tensor, states: list[Tensor], layout, flat_weights: list[Tensor]):
    op = _OPS[layer.mode]
    state = states if layer.mode == "LSTM" else states[0]
    common = (flat_weights, layer.bias, layer.num_layers, float(layer.dropout), layer.training,
              layer.bidirectional)
    if layout.packed is not None:
        result = op(layout.packed.data, layout.packed.batch_sizes, state, *common)
        y = result[0].new_zeros(layout.steps * layout.batch, result[0].shape[-1])
        y = y.index_copy(0, layout.flat_index, result[0]).view(layout.steps, layout.batch, -1)
    else:
        result = op(x, state, *common, False)
        y = result[0]
    return y, list(result[1:])


_run_eagerly = torch.compiler.disable(_run)
