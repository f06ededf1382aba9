"""Run an existing torch program on lstmkit's layers without editing it.

    with lstmkit.swap_into_torch(backend="bptt"):
        runpy.run_path("train.py", run_name="__main__")

Inside the block ``LSTM``, ``GRU``, ``RNN`` and the cells ``LSTMCell``, ``GRUCell``, ``RNNCell`` are
lstmkit's classes everywhere torch exposes them (``torch.nn.X``, ``torch.nn.modules.X`` and
``torch.nn.modules.rnn.X``), so programs that write ``nn.LSTM(...)`` build lstmkit layers, and a
program that allow-lists ``torch.nn.modules.rnn.LSTM`` for ``torch.load(weights_only=True)`` allows
lstmkit's. ``backend`` becomes the default engine of the layers built in the block; the classes
stay lstmkit's own, so those models pickle and load anywhere lstmkit is imported. Names imported
before the block (``from torch.nn import LSTM``) keep pointing at torch's.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch.nn
import torch.nn.modules
import torch.nn.modules.rnn

from lstmkit.engines import check_name
from lstmkit.nn import cells, layers

SWAPPABLE = {"LSTM": layers.LSTM, "GRU": layers.GRU, "RNN": layers.RNN,
             "LSTMCell": cells.LSTMCell, "GRUCell": cells.GRUCell, "RNNCell": cells.RNNCell}
_PLACES = (torch.nn, torch.nn.modules, torch.nn.modules.rnn)


@contextmanager
def swap_into_torch(backend: str = "auto", names: tuple[str, ...] = tuple(SWAPPABLE)):
    """Replace torch.nn's recurrent layers and cells by lstmkit's inside the block, restoring them after."""
    backend = check_name(backend)
    unknown = [name for name in names if name not in SWAPPABLE]
    if unknown:
        raise ValueError(f"swap_into_torch can swap {', '.join(SWAPPABLE)}; got {', '.join(map(repr, unknown))}")
    originals = [(place, name, getattr(place, name)) for place in _PLACES for name in names]
    token = layers.DEFAULT_BACKEND.set(backend)
    try:
        for place, name, _ in originals:
            setattr(place, name, SWAPPABLE[name])
        yield
    finally:
        for place, name, original in originals:
            setattr(place, name, original)
        layers.DEFAULT_BACKEND.reset(token)
