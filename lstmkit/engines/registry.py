"""Engines by name, and the choice among them.

- ``reference``: the cells in a time loop with hand-written back-propagation through time
  (``lstmkit.engines.bptt``); serves every configuration and records gates for tracing.
- ``native``: torch's own fused op (oneDNN on CPU, cuDNN on GPU); standard LSTM/GRU/RNN only.
- ``cpu``: lstmkit's fused C++ engine (``lstmkit.engines.cpu``), compiled on first use.

``backend="auto"`` takes the first engine in ``AUTO_ORDER`` (``PACKED_AUTO_ORDER`` for a
PackedSequence) that can serve the module as it is configured now (training or not); the layer
records the one that ran in ``module.last_backend``.
An engine asked for by name that cannot serve the configuration raises ``BackendUnavailable``
saying why and what it supports. Nothing falls back silently.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from lstmkit.errors import BackendUnavailable

BACKENDS = ("auto", "reference", "native", "cpu")
# native first: torch's oneDNN/cuDNN op is as fast as the cpu engine or faster for the standard
# LSTM at most sizes (docs/cpu_engine.md); the cpu engine serves the variants 1.2-3x faster than
# the reference loop; the reference serves everything else (other devices, no compiler).
AUTO_ORDER = ("native", "cpu", "reference")
# Packed sequences are the exception: torch's CPU op runs them step by step, and the cpu engine
# measured 1.4-12x faster on them (docs/cpu_engine.md). On GPU tensors the cpu engine declines.
PACKED_AUTO_ORDER = ("cpu", "native", "reference")

NATIVE_SUPPORTS = ("torch's fused op runs the standard LSTM, GRU and RNN (tanh/relu) with num_layers, "
                   "bias, batch_first, dropout, bidirectional, proj_size, packed input and weight_drop")


def check_name(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}, got {backend!r}")
    return backend


def why_not(name: str, module, training: bool) -> str | None:
    """None when engine ``name`` can run ``module`` now, else the reason, naming what it supports."""
    if name == "reference":
        return None
    variant = getattr(module, "variant", None)
    if name == "native":
        if variant is None:
            return None
        unsupported = variant.structural + variant.stochastic(training)
        if unsupported:
            return f"it does not implement {', '.join(unsupported)}; {NATIVE_SUPPORTS}"
        return None
    if name == "cpu":
        try:
            cpu = importlib.import_module("lstmkit.engines.cpu")
        except ImportError as error:  # the engine's Python side is missing from this install
            return f"the cpu engine is not installed ({error})"
        ok, reason = cpu.is_available()
        if not ok:
            return reason
        return cpu.why_not(module, training)
    raise ValueError(f"unknown backend {name!r}")


def select(module, training: bool, tracing: bool, packed: bool = False) -> str:
    """The engine that will run ``module`` now (on a PackedSequence when ``packed``).
    Tracing needs the gates, which the reference records."""
    if tracing:
        return "reference"
    if module.backend == "auto":
        for name in PACKED_AUTO_ORDER if packed else AUTO_ORDER:
            if why_not(name, module, training) is None:
                return name
        raise AssertionError("the reference engine serves every configuration")  # pragma: no cover
    reason = why_not(module.backend, module, training)
    if reason is not None:
        raise BackendUnavailable(f"backend={module.backend!r} cannot run this {type(module).__name__}: "
                                 f"{reason}. Use backend='auto' to pick an engine that can.")
    return module.backend


def recurrence_engine(name: str) -> ModuleType:
    """The module holding ``lstm_recurrence``/``gru_recurrence``/``rnn_recurrence`` for an engine."""
    return importlib.import_module(f"lstmkit.engines.{ {'reference': 'bptt'}.get(name, name)}")


def available() -> dict[str, str]:
    """Each engine and whether it can run on this machine: 'available' or the reason it cannot."""
    status = {"reference": "available", "native": "available"}
    try:
        cpu = importlib.import_module("lstmkit.engines.cpu")
        ok, reason = cpu.is_available()
        status["cpu"] = "available" if ok else f"unavailable: {reason}"
    except ImportError as error:
        status["cpu"] = f"unavailable: {error}"
    return status


__all__ = ["BACKENDS", "AUTO_ORDER", "PACKED_AUTO_ORDER", "select", "why_not", "available",
           "recurrence_engine", "check_name", "BackendUnavailable"]
