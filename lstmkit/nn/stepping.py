"""The fast path of ``LSTM.step``: the cpu engine's fused step, when it computes exactly what
``forward`` on a one-step sequence would.

It serves a unidirectional LSTM without structural variants, run without gradients on CPU tensors
in float32/float64, outside torch.compile/export/jit tracing. All layers advance in one C++ call;
the weights are packed once and re-packed when they change. Anything else returns None and the
layer runs ``forward`` instead (which also names what is wrong with a bad input).
"""
from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.errors import BackendUnavailable


def fused_stepper(lstm, x_t: Tensor, state):
    """The cpu engine's stepper for this step of ``lstm``, or None when forward must run it."""
    if (lstm.backend not in ("auto", "cpu") or lstm._trace_recorder is not None
            or (lstm.training and (lstm.dropout or lstm.variant.stochastic(True)))
            or torch.compiler.is_compiling() or torch.jit.is_tracing()):
        return None
    cache = lstm.__dict__.get("_step_cache")
    if not (_continues_last_step(cache, x_t, state)
            or (x_t.is_cpu and x_t.dtype in (torch.float32, torch.float64)
                and _plain_step_shapes(lstm, x_t, state))):
        return None
    if torch.is_grad_enabled() and (x_t.requires_grad or any(p.requires_grad for p in lstm.parameters())
                                    or (state is not None and any(s.requires_grad for s in state))):
        return None                                       # the fused step has no backward
    if cache is None:
        try:
            from lstmkit.engines.cpu.step import LSTMStepper
            cache = {"stepper": LSTMStepper(lstm), "key": None, "last": None}
        except (ImportError, BackendUnavailable):         # a variant, bidirectional, no compiler
            cache = {"stepper": None, "key": None, "last": None}
        lstm.__dict__["_step_cache"] = cache
    stepper = cache["stepper"]
    if stepper is None:
        return None
    # in-place updates (optimizer steps, load_state_dict) bump _version; .to()/.double() move data.
    # The module's own parameter dict (it has no submodules) is cheaper to walk than parameters().
    key = [(p.data_ptr(), p._version) for p in lstm._parameters.values()]
    if key != cache["key"]:
        try:
            stepper.refresh()
        except BackendUnavailable:                    # moved to a device or dtype it does not serve
            return None
        cache["key"] = key
    return stepper if stepper.dtype == x_t.dtype else None


def remember_step(lstm, x_t: Tensor, state) -> None:
    """Note the state a fused step returned, so the next step of the loop can skip the shape test."""
    lstm.__dict__["_step_cache"]["last"] = (state[0], state[1], x_t.shape, x_t.dtype)


def _continues_last_step(cache, x_t: Tensor, state) -> bool:
    """True when `state` holds the very tensors the last fused step returned and x_t has that
    step's shape and dtype (the loop `y, state = lstm.step(x, state)`): then the full shape test is
    known to pass, and it is skipped (it costs about as much as the rest of the checks together)."""
    last = cache["last"] if cache is not None else None
    return (last is not None and type(state) is tuple and len(state) == 2
            and state[0] is last[0] and state[1] is last[1]
            and x_t.shape == last[2] and x_t.dtype == last[3] and x_t.is_cpu)


def _plain_step_shapes(lstm, x_t: Tensor, state) -> bool:
    """x_t (B, I) or (I,), and a state of the shapes and dtype forward would accept with it.
    Written out test by test: it runs before every fused step, so it must cost next to nothing."""
    batched = x_t.dim() == 2
    if not (batched or x_t.dim() == 1) or x_t.shape[-1] != lstm.input_size:
        return False
    if state is None:
        return True
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        return False
    h, c = state
    if not (isinstance(h, Tensor) and isinstance(c, Tensor)):
        return False
    lead = (lstm.num_layers, x_t.shape[0]) if batched else (lstm.num_layers,)
    return (h.shape == (*lead, lstm.proj_size or lstm.hidden_size) and c.shape == (*lead, lstm.hidden_size)
            and h.dtype == x_t.dtype and c.dtype == x_t.dtype
            and h.is_cpu and c.is_cpu)
