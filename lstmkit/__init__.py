"""lstmkit: LSTMs from zero to hero.

A transparent LSTM whose every gate can be read and that is a drop-in replacement for
torch.nn.LSTM, experiments that show why gates remember, ready tasks, and fast engines.
"""
__version__ = "0.1.0"

import torch  # noqa: E402

from lstmkit.nn.cells import GRUCell, LSTMCell, RNNCell, gru_cell, lstm_cell, rnn_cell  # noqa: E402
from lstmkit.nn.layers import GRU, LSTM, RNN  # noqa: E402
from lstmkit.nn.streaming import StepModule  # noqa: E402
from lstmkit.nn.swap import swap_into_torch  # noqa: E402
from lstmkit.nn.trace import trace  # noqa: E402

# A whole model saved with torch.save loads with torch.load(weights_only=True) wherever lstmkit is
# imported, as one holding torch.nn's layers does: these classes are allow-listed (their pickled
# state holds plain values only), and nothing else is.
torch.serialization.add_safe_globals([LSTM, GRU, RNN, LSTMCell, GRUCell, RNNCell])

__all__ = [
    "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell",
    "lstm_cell", "gru_cell", "rnn_cell", "trace", "swap_into_torch", "StepModule", "__version__",
]
