"""The bptt engine: the specification cells in a time loop, with back-propagation through time
written by hand.

Forward runs each step in place into preallocated (T, B, ·) buffers; backward walks the steps in
reverse with the activations' derivatives precomputed for all steps at once, and the weight
gradients are one matrix product over all steps. Cost and saved memory are linear in T. It serves
every configuration on any device and returns the gates, so ``lstmkit.trace`` records with it.
"""
from lstmkit.engines.bptt.gru import gru
from lstmkit.engines.bptt.lstm import lstm
from lstmkit.engines.bptt.rnn import rnn
from lstmkit.engines.contract import LayerSpec

name = "bptt"
serves = "every LSTM variant, GRU and tanh/relu RNN, any floating dtype, on any device"


def why_not(spec: LayerSpec) -> str | None:
    if spec.exporting:
        return "a portable graph cannot hold its hand-written backward (an autograd.Function)"
    return None


__all__ = ["name", "serves", "why_not", "lstm", "gru", "rnn"]
