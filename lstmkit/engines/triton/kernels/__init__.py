"""Triton kernels of the recurrences; imported on first use by ``lstmkit.engines.triton.launch``."""
from . import gru, lstm_backward, lstm_forward, rnn

KERNELS = {
    "lstm_forward": lstm_forward.lstm_forward,
    "lstm_backward": lstm_backward.lstm_backward,
    "gru_forward": gru.gru_forward,
    "gru_backward": gru.gru_backward,
    "rnn_forward": rnn.rnn_forward,
    "rnn_backward": rnn.rnn_backward,
}
