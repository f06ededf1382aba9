"""torch's own fused recurrent ops (oneDNN on CPU, cuDNN on GPU) behind lstmkit's layers.

They take the weights in torch.nn's flat order per layer and direction:
``w_ih, w_hh, [b_ih, b_hh], [w_hr]``, which is the order lstmkit registers them in.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

_OPS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


def run(module, input: Tensor | PackedSequence, hx, flat_weights: list[Tensor]):
    """Run the whole stack; ``input`` as the caller gave it (batched), ``hx`` already defaulted.

    Returns ``(output, h_n)`` or ``(output, (h_n, c_n))`` like torch.nn.
    """
    op = _OPS[module.mode]
    state = list(hx) if module.mode == "LSTM" else hx
    common = (flat_weights, module.bias, module.num_layers, float(module.dropout), module.training,
              module.bidirectional)
    if isinstance(input, PackedSequence):
        result = op(input.data, input.batch_sizes, state, *common)
        output = PackedSequence(result[0], input.batch_sizes, input.sorted_indices, input.unsorted_indices)
    else:
        result = op(input, state, *common, module.batch_first)
        output = result[0]
    if module.mode == "LSTM":
        return output, (result[1], result[2])
    return output, result[1]
