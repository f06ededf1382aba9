"""Run an existing torch program on lstmkit's layers without editing it.

    with lstmkit.swap_into_torch(backend="reference"):
        runpy.run_path("train.py", run_name="__main__")

Inside the block ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` are lstmkit's classes (with the chosen
backend as their default), so programs that write ``nn.LSTM(...)`` build lstmkit layers. Names
imported before the block (``from torch.nn import LSTM``) keep pointing at torch's.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch.nn

from lstmkit.nn import layers
from lstmkit.engines.registry import check_name


def _with_default_backend(cls: type, backend: str) -> type:
    if backend == "auto":
        return cls

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("backend", backend)
        cls.__init__(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__,
                                       "__doc__": cls.__doc__})


@contextmanager
def swap_into_torch(backend: str = "auto", names: tuple[str, ...] = ("LSTM", "GRU", "RNN")):
    """Replace torch.nn's recurrent layers by lstmkit's inside the block, restoring them after."""
    check_name(backend)
    originals = {name: getattr(torch.nn, name) for name in names}
    try:
        for name in names:
            setattr(torch.nn, name, _with_default_backend(getattr(layers, name), backend))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.nn, name, original)
