"""The reference engine: the spec cells in a time loop, with back-propagation through time by hand.

It serves every configuration (all LSTM variants, GRU, tanh/relu RNN) and returns the gates for
tracing. See "The recurrence contract" in docs/ARCHITECTURE.md for the three functions.
"""
from lstmkit.engines.bptt.gru import gru_recurrence
from lstmkit.engines.bptt.lstm import lstm_recurrence
from lstmkit.engines.bptt.rnn import rnn_recurrence

__all__ = ["lstm_recurrence", "gru_recurrence", "rnn_recurrence"]
