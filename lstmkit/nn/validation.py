"""Input checks that run before any computation and say what was expected and what came.

Everything here raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape, device,
size, empty or non-finite values), so a user sees one clear line instead of a traceback from
inside a time loop.

While torch.compile, torch.export or torch.jit.trace record a graph, the checks of kind, shape,
dtype and device still run (on the example inputs); the check for NaN and infinite values does
not, because it reads the data: a graph would have to branch on values it cannot know.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_tensor(value, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_dtype_device(t: Tensor, name: str, reference: Tensor) -> None:
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor like the module's weights "
                        f"({reference.dtype}), got {t.dtype}")
    if t.dtype != reference.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but the module's weights are {reference.dtype}; "
                        f"convert one of them, e.g. input.to({reference.dtype}) or module.to({t.dtype})")
    if t.device != reference.device:
        raise ValueError(f"{name} is on {t.device} but the module's weights are on {reference.device}; "
                         f"move one of them, e.g. input.to('{reference.device}')")


def _recording_a_graph() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _check_finite(t: Tensor, name: str) -> None:
    if _recording_a_graph():
        return
    # A sum is finite whenever every element is (unless it overflows, which the exact test then
    # clears), and it costs a small fraction of isfinite().all() on CPU, which would be a visible
    # part of a training step.
    if math.isfinite(t.sum().item()) or bool(torch.isfinite(t).all()):
        return
    bad = (~torch.isfinite(t)).nonzero()[0].tolist()
    raise ValueError(f"{name} contains NaN or infinite values (first at index {tuple(bad)}); "
                     "an RNN would spread them to every later step")


def _first_weight(module: nn.Module) -> Tensor:
    return next(module.parameters())


def check_cell_input(module: nn.Module, input, states: Sequence[Tensor] | None,
                     state_sizes: Sequence[int]) -> None:
    """Checks for a cell's ``(input, state)``: input (B, I) or (I,), each state (B, S) or (S,)."""
    weight = _first_weight(module)
    input = _check_tensor(input, "input")
    if input.dim() not in (1, 2):
        raise ValueError(f"{type(module).__name__} expects input of shape (batch, {module.input_size}) or "
                         f"({module.input_size},) for one sample, got {input.dim()} dimensions {_shape(input)}")
    if input.shape[-1] != module.input_size:
        raise ValueError(f"input has {input.shape[-1]} features in its last dimension, but "
                         f"{type(module).__name__} was built with input_size={module.input_size}")
    if input.dim() == 2 and input.shape[0] == 0:
        raise ValueError("input is an empty batch (batch size 0); give at least one sample")
    _check_dtype_device(input, "input", weight)
    _check_finite(input, "input")
    if states is None:
        return
    names = ["hx"] if len(state_sizes) == 1 else ["hx[0] (h)", "hx[1] (c)"]
    if len(states) != len(state_sizes):
        raise ValueError(f"{type(module).__name__} expects its state as {len(state_sizes)} tensor(s), "
                         f"got {len(states)}")
    for state, size, name in zip(states, state_sizes, names):
        state = _check_tensor(state, name)
        expected = (input.shape[0], size) if input.dim() == 2 else (size,)
        if tuple(state.shape) != expected:
            raise ValueError(f"{name} must have shape {expected} to match the input, got {_shape(state)}")
        _check_dtype_device(state, name, weight)
        _check_finite(state, name)


def check_layer_input(module: nn.Module, input, hx, lengths=None) -> None:
    """Checks for a layer's ``(input, hx)``: (T, B, I) / (B, T, I) / (T, I), or a PackedSequence;
    and for the lengths of a padded batch, when given."""
    weight = _first_weight(module)
    name = type(module).__name__
    if isinstance(input, PackedSequence):
        data = _check_tensor(input.data, "input.data")
        if data.dim() != 2:
            raise ValueError(f"a PackedSequence's data must be 2-dimensional (total steps, features), "
                             f"got {_shape(data)}")
        batch, batched, seq_dim = int(input.batch_sizes[0]) if len(input.batch_sizes) else 0, True, 0
        if data.shape[0] == 0:
            raise ValueError("input is an empty PackedSequence; give at least one non-empty sequence")
    else:
        data = _check_tensor(input, "input")
        layout = "(batch, seq, features)" if module.batch_first else "(seq, batch, features)"
        if data.dim() not in (2, 3):
            raise ValueError(f"{name} expects input of 3 dimensions {layout} or 2 dimensions "
                             f"(seq, features) for one sequence, got {data.dim()} dimensions {_shape(data)}")
        batched = data.dim() == 3
        seq_dim = 1 if (batched and module.batch_first) else 0
        batch = data.shape[1 - seq_dim] if batched else 1
        if data.shape[seq_dim] == 0:
            raise ValueError(f"input is an empty sequence (length 0 along the time axis of {_shape(data)})")
        if batch == 0:
            raise ValueError(f"input is an empty batch (batch size 0 in {_shape(data)})")
    if data.shape[-1] != module.input_size:
        raise ValueError(f"input has {data.shape[-1]} features in its last dimension, but {name} was "
                         f"built with input_size={module.input_size}")
    _check_dtype_device(data, "input", weight)
    _check_finite(data, "input")
    if lengths is not None:
        _check_lengths(lengths, input, batch, seq_dim)
    if hx is not None:
        _check_states(module, hx, batch, batched)


def _check_lengths(lengths, input, batch: int, seq_dim: int) -> None:
    if isinstance(input, PackedSequence) or input.dim() != 3:
        raise ValueError("lengths go with a padded batch (3 dimensions); a PackedSequence or a single "
                         "sequence carries its own length")
    lengths = _check_tensor(lengths, "lengths")
    if lengths.dim() != 1 or lengths.shape[0] != batch or lengths.is_floating_point():
        raise ValueError(f"lengths must be an integer tensor of shape ({batch},), one per sequence, "
                         f"got {lengths.dtype} {_shape(lengths)}")
    if _recording_a_graph():
        return
    steps = input.shape[seq_dim]
    if lengths.numel() and not bool(((lengths >= 1) & (lengths <= steps)).all()):
        raise ValueError(f"lengths must lie in 1..{steps} (the padded length), got {lengths.tolist()}")


def _check_states(module: nn.Module, hx, batch: int, batched: bool) -> None:
    layers = module.num_layers * (2 if module.bidirectional else 1)
    weight = _first_weight(module)
    if module.mode == "LSTM":
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"LSTM expects hx as a tuple (h_0, c_0), got {type(hx).__name__}")
        out_size = module.proj_size or module.hidden_size
        expected = [("h_0", hx[0], out_size), ("c_0", hx[1], module.hidden_size)]
    else:
        expected = [("h_0", hx, module.hidden_size)]
    for label, state, size in expected:
        state = _check_tensor(state, label)
        shape = (layers, batch, size) if batched else (layers, size)
        if tuple(state.shape) != shape:
            raise ValueError(f"{label} must have shape {shape} (num_layers * num_directions, "
                             f"{'batch, ' if batched else ''}{'proj_size' if size != module.hidden_size else 'hidden_size'}), "
                             f"got {_shape(state)}")
        _check_dtype_device(state, label, weight)
        _check_finite(state, label)
