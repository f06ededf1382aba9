"""Reading the gates: record i, f, g, o, c, h of every step while a model runs.

    with lstmkit.trace(model) as t:
        model(x)
    rec = t.get(layer=0, direction="forward")
    rec.f          # (T, B, H) forget gate of every step, or (B, T, H) for a batch_first layer

While recording, every lstmkit layer inside ``model`` runs on the reference engine (the one that
computes the gates one by one), whatever its ``backend``. Outside a ``trace`` block a layer pays
one attribute check per forward call.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import Tensor, nn

from lstmkit.nn.sequence import Layout, per_sequence

DIRECTIONS = ("forward", "reverse")


@dataclass
class GateRecord:
    """What one layer and direction did during one forward call.

    ``tensors`` holds, per name, a (T, B, ·) tensor in the caller's batch order (batch-first when
    the layer is): LSTM ``i f g o c h``, GRU ``r z n h``, RNN ``h``. Rows past a sequence's end are 0.
    """

    module: nn.Module
    module_name: str
    layer: int
    direction: str
    call: int
    tensors: dict[str, Tensor] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Tensor:
        tensors = self.__dict__.get("tensors", {})
        if name in tensors:
            return tensors[name]
        raise AttributeError(f"this record has no {name!r}; it has {', '.join(tensors) or 'nothing'}")

    def _repr_html_(self) -> str:
        """In Jupyter: the record's first sequence in the gate viewer (lstmkit.view)."""
        from lstmkit.view.record import record_html

        return record_html(self)


class Trace:
    """The records of a ``trace`` block, one per layer, direction and forward call."""

    def __init__(self, names: dict[nn.Module, str]) -> None:
        self.records: list[GateRecord] = []
        self._names = names
        self._calls: dict[nn.Module, int] = {}
        self._last_call: dict[nn.Module, int] = {}

    def record(self, module: nn.Module, layer: int, direction: int, layout: Layout, **tensors: Tensor):
        """Called by a layer for each layer-direction it ran; the first record of a call opens it."""
        if layer == 0 and direction == 0:
            self._calls[module] = self._calls.get(module, -1) + 1
        call = self._calls[module]
        kept = {name: per_sequence(t.detach(), layout) for name, t in tensors.items()}
        self.records.append(GateRecord(module, self._names[module], layer, DIRECTIONS[direction], call, kept))

    def get(self, layer: int = 0, direction: str = "forward", module: nn.Module | str | None = None,
            call: int = -1) -> GateRecord:
        """One record: of ``module`` (the layer or its name; needed when the model has several),
        ``layer`` and ``direction`` ("forward" or "reverse"), of forward call ``call`` (last by default)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
        candidates = [r for r in self.records if r.layer == layer and r.direction == direction]
        if module is not None:
            candidates = [r for r in candidates if r.module is module or r.module_name == module]
        modules = {id(r.module) for r in candidates}
        if len(modules) > 1:
            names = sorted({r.module_name for r in candidates})
            raise ValueError(f"several traced layers match; pass module= one of {names}")
        if not candidates:
            raise LookupError(f"nothing was recorded for layer={layer}, direction={direction!r}"
                              + (f", module={module!r}" if module is not None else "")
                              + f"; recorded: {self._summary() or 'nothing (did the model run inside the block?)'}")
        calls = sorted({r.call for r in candidates})
        try:
            wanted = calls[call]
        except IndexError:
            raise LookupError(f"call {call} was not recorded; {len(calls)} call(s) were") from None
        return next(r for r in candidates if r.call == wanted)

    def _summary(self) -> str:
        return ", ".join(sorted({f"{r.module_name or 'model'}[layer {r.layer}, {r.direction}]"
                                 for r in self.records}))

    def __len__(self) -> int:
        return len(self.records)


@contextmanager
def trace(model: nn.Module):
    """Record the gates of every lstmkit layer in ``model`` (itself one, or containing some)."""
    from lstmkit.nn.layers import RecurrentLayers

    layers = {m: name for name, m in model.named_modules() if isinstance(m, RecurrentLayers)}
    if not layers:
        raise ValueError(f"{type(model).__name__} contains no lstmkit layer (LSTM, GRU or RNN) to trace; "
                         "torch.nn layers cannot show their gates: swap them for lstmkit's")
    recording = Trace(layers)
    previous = {m: m._trace_recorder for m in layers}
    for m in layers:
        m._trace_recorder = recording
    try:
        yield recording
    finally:
        for m, recorder in previous.items():
            m._trace_recorder = recorder
