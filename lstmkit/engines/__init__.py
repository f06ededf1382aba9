"""Engines by name, and the choice among them: the one registry everything reads.

- ``loop``: the specification cells in a plain time loop under autograd; what every engine is
  tested against.
- ``bptt``: the same cells with back-propagation through time written by hand; serves everything
  (``reference`` is its older name).
- ``native``: torch's own fused op (oneDNN on CPU, cuDNN on GPU); standard LSTM/GRU/RNN only.
- ``cpu``: lstmkit's fused C++ engine, compiled on first use.
- ``scan``: the specification cells in torch's ``scan``; what a portable graph is made of.
- ``triton``: fused Triton kernels for CUDA tensors; by name only until a GPU run has measured
  where it beats cuDNN (docs/gpu.md).

An engine is a module (or any object) with ``name``, ``serves`` (one line), ``why_not(spec)`` and
either the recurrences ``lstm``/``gru``/``rnn`` of ``lstmkit.engines.contract`` or ``run_stack``.
Adding one is one module and one ``register`` line. ``auto``, ``--backend`` choices, error
messages, ``lstmkit bench``, ``lstmkit selfcheck`` and the tests all read ``ENGINES``.
"""
from __future__ import annotations

from lstmkit.engines import bptt, cpu, loop, native, scan, triton
from lstmkit.engines.contract import Engine, LayerSpec
from lstmkit.errors import BackendUnavailable

ENGINES: dict[str, Engine] = {}
ALIASES = {"reference": "bptt"}


def register(engine: Engine) -> Engine:
    ENGINES[engine.name] = engine
    return engine


for _engine in (loop, bptt, native, cpu, scan, triton):
    register(_engine)


def names() -> tuple[str, ...]:
    """Every name ``backend=`` and ``--backend`` accept."""
    return ("auto", *ENGINES, *ALIASES)


def check_name(backend: str) -> str:
    """The engine's own name for ``backend`` ("auto" stays "auto"), or a ValueError listing the names."""
    if backend == "auto" or backend in ENGINES:
        return backend
    if backend in ALIASES:
        return ALIASES[backend]
    raise ValueError(f"backend must be one of {', '.join(map(repr, names()))}, got {backend!r}")


def get(name: str) -> Engine:
    return ENGINES[check_name(name)]


def auto_order(spec: LayerSpec) -> tuple[str, ...]:
    """The engines ``auto`` tries, best first, for ``spec``."""
    if spec.exporting:
        # a graph of torch ops with the length as a dynamic dimension: the cell in a scan (torch's
        # fused op would be unrolled into a fixed number of steps), else the plain loop, which
        # torch.jit.trace records step by step
        return ("scan", "loop")
    if spec.compiling and spec.training:
        # the cpu engine's operator traces into one graph; torch's CPU op runs eagerly there
        return ("cpu", "native", "bptt")
    if spec.packed:
        # torch's CPU op runs packed batches step by step; the cpu engine declines GPU tensors
        return ("cpu", "native", "bptt")
    # torch's op is as fast as the cpu engine or faster for the standard LSTM at most sizes
    # (docs/cpu_engine.md); the cpu engine serves the variants faster than bptt's loop
    return ("native", "cpu", "bptt")


def select(spec: LayerSpec, requested: str, *, recording: bool = False) -> Engine:
    """The engine that runs ``spec`` now.

    ``requested`` is the layer's ``backend``. Two cases override it: a portable graph
    (torch.export, ONNX, torch.jit.trace) is made of torch ops whichever engine runs the layer
    eagerly, and recording gates for ``lstmkit.trace`` takes bptt, which serves everything.
    An engine asked for by name that cannot serve ``spec`` raises ``BackendUnavailable``.
    """
    if recording and not spec.exporting:
        return ENGINES["bptt"]
    if spec.exporting or requested == "auto":
        for name in auto_order(spec):
            if ENGINES[name].why_not(spec) is None:
                return ENGINES[name]
        raise BackendUnavailable(f"no engine can run this {spec.kind} layer")  # pragma: no cover
    engine = get(requested)
    reason = engine.why_not(spec)
    if reason is not None:
        raise BackendUnavailable(f"backend={engine.name!r} cannot run this {spec.kind} layer: {reason}; "
                                 f"it serves {engine.serves}. Use backend='auto' to pick an engine that can.")
    return engine


def available() -> dict[str, str]:
    """Each engine and whether it can run on this machine: 'available' or why it cannot."""
    status = {}
    for name, engine in ENGINES.items():
        ok, reason = engine.is_available() if hasattr(engine, "is_available") else (True, "")
        status[name] = "available" if ok else f"unavailable: {reason}"
    return status


__all__ = ["ENGINES", "ALIASES", "register", "names", "check_name", "get", "auto_order", "select",
           "available", "BackendUnavailable"]
