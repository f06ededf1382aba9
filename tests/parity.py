"""One helper for every parity test: run two modules on the same inputs, compare everything.

Outputs, final states and the gradients of inputs, initial states and every parameter (matched
by name) are compared with the tolerance of the dtype.
"""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 1e-2}


def _flatten(value) -> list[torch.Tensor]:
    if isinstance(value, PackedSequence):
        return [value.data]
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in _flatten(v)]


def _clone_input(value):
    """A fresh leaf copy of an input (tensor, PackedSequence or state tuple) that requires grad."""
    if value is None:
        return None
    if isinstance(value, PackedSequence):
        data = value.data.detach().clone().requires_grad_(True)
        return PackedSequence(data, value.batch_sizes, value.sorted_indices, value.unsorted_indices)
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(True)
    return tuple(_clone_input(v) for v in value)


def run_with_grads(module, *inputs, seed: int = 0):
    """Forward, then backward of a fixed random projection of all outputs; returns what to compare."""
    inputs = [_clone_input(v) for v in inputs]
    outputs = _flatten(module(*inputs))
    generator = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=generator, dtype=o.dtype).to(o.device)).sum()
               for o in outputs)
    leaves = [t for v in inputs if v is not None for t in _flatten(v)]
    params = dict(module.named_parameters())
    grads = torch.autograd.grad(loss, leaves + list(params.values()), allow_unused=True)
    return {
        "outputs": [o.detach() for o in outputs],
        "input_grads": list(grads[:len(leaves)]),
        "param_grads": dict(zip(params, grads[len(leaves):])),
    }


def assert_close(a, b, tol: float, what: str) -> None:
    if a is None or b is None:
        assert a is None and b is None or _is_zero(a) and _is_zero(b), f"{what}: one gradient is missing"
        return
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} != {tuple(b.shape)}"
    err = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    scale = max(1.0, b.double().abs().max().item() if b.numel() else 0.0)
    assert err <= tol * scale, f"{what}: max abs difference {err:.3e} > {tol:.0e} (scale {scale:.2g})"


def _is_zero(t) -> bool:
    return t is None or not bool(t.abs().max() > 0)


def assert_same_results(module_a, module_b, *inputs, tol: float | None = None) -> None:
    """Both modules, same inputs: same outputs, states and gradients (parameters matched by name)."""
    dtype = next(module_a.parameters()).dtype
    tol = TOLERANCE[dtype] if tol is None else tol
    ra, rb = run_with_grads(module_a, *inputs), run_with_grads(module_b, *inputs)
    assert len(ra["outputs"]) == len(rb["outputs"])
    for k, (a, b) in enumerate(zip(ra["outputs"], rb["outputs"])):
        assert_close(a, b, tol, f"output {k}")
    for k, (a, b) in enumerate(zip(ra["input_grads"], rb["input_grads"])):
        assert_close(a, b, tol, f"gradient of input {k}")
    assert ra["param_grads"].keys() == rb["param_grads"].keys()
    for name in ra["param_grads"]:
        assert_close(ra["param_grads"][name], rb["param_grads"][name], tol, f"gradient of {name}")
