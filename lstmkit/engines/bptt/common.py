"""What the three reference recurrences share: the order of steps, packed rows, layer-norm backward.

Every recurrence keeps its states in one buffer per state, indexed by the *processing* step k
(k = 0 .. T-1; time t = k forwards, t = T-1-k in reverse), with one extra slot for the initial
state: ``states[k]`` is what step k reads, ``states[k + 1]`` what it writes. Rows past
``batch_sizes[t]`` are copied forward unchanged, so a packed row simply holds its state while
it is inactive and a reversed row starts from h0 at its own last step. Per-step buffers (gates,
cell values, gradients) are indexed by time t, so they need no reordering to be returned.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor


class StepPlan(NamedTuple):
    """The steps of one recurrence in processing order, each (time t, active rows n)."""

    steps: list[tuple[int, int]]
    packed: bool    # some step has fewer active rows than the batch
    reverse: bool


def make_plan(steps: int, batch: int, batch_sizes: Sequence[int] | Tensor | None, reverse: bool) -> StepPlan:
    """Check ``batch_sizes`` against (T, B) and list the steps in the order they run."""
    if steps < 1:
        raise ValueError(f"the recurrence needs at least one step, got a sequence of length {steps}")
    if batch_sizes is None:
        sizes = [batch] * steps
    else:
        sizes = [int(n) for n in (batch_sizes.tolist() if isinstance(batch_sizes, Tensor) else batch_sizes)]
        if len(sizes) != steps:
            raise ValueError(f"batch_sizes must have one entry per step ({steps}), got {len(sizes)}")
        if any(n < 0 or n > batch for n in sizes):
            raise ValueError(f"batch_sizes must lie in [0, {batch}] (the batch size), got {sizes}")
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    return StepPlan([(t, sizes[t]) for t in order], any(n < batch for n in sizes), bool(reverse))


def new_buffer(plan: StepPlan, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A per-step buffer. Zeroed when packed: inactive rows are read by the whole-sequence sums."""
    return like.new_zeros(shape) if plan.packed else like.new_empty(shape)


def state_buffer(initial: Tensor, steps: int) -> Tensor:
    """(T+1, B, ·) states in processing order; slot 0 holds the initial state."""
    states = initial.new_empty((steps + 1,) + tuple(initial.shape))
    states[0] = initial
    return states


def carry_inactive(states: Tensor, k: int, n: int) -> None:
    """Rows past the n active ones keep their state through step k."""
    if n < states.shape[1]:
        states[k + 1, n:] = states[k, n:]


def in_time_order(per_step: Tensor, plan: StepPlan) -> Tensor:
    """A (T, ...) tensor indexed by processing step, reindexed by time (a copy only in reverse)."""
    return per_step.flip(0) if plan.reverse else per_step


def active_rows(plan: StepPlan, batch: int, like: Tensor) -> Tensor:
    """(T, B, 1) mask, 1 where row b is active at time t."""
    sizes = torch.empty(len(plan.steps), dtype=torch.long)
    for t, n in plan.steps:
        sizes[t] = n
    mask = torch.arange(batch)[None, :] < sizes[:, None]                       # (T, B)
    return mask.to(device=like.device, dtype=like.dtype).unsqueeze(-1)


def outputs_from_states(states: Tensor, plan: StepPlan) -> Tensor:
    """(T, B, ·) outputs in time order from (T+1, B, ·) states: zero where a row is inactive.

    Always a fresh tensor, so a caller's in-place change of the output cannot reach a saved state.
    """
    out = in_time_order(states[1:], plan)
    if plan.packed:
        return out * active_rows(plan, states.shape[1], states)
    return out.clone() if not plan.reverse else out


def layer_norm_backward(d_hat: Tensor, x_hat: Tensor, rstd: Tensor) -> Tensor:
    """Gradient through x_hat = (x - mean(x)) * rstd along the last dimension.

    ``d_hat`` is the gradient with respect to x_hat (gain already applied); ``rstd`` is
    1/sqrt(var + eps), shape (..., 1). The mean and variance terms remove the components of
    d_hat that only shift or scale x, which the normalisation undoes anyway.
    """
    mean_d = d_hat.mean(-1, keepdim=True)
    mean_dx = (d_hat * x_hat).mean(-1, keepdim=True)
    return (d_hat - mean_d - x_hat * mean_dx) * rstd


def check_state(name: str, value: Tensor, shape: tuple[int, ...], like: Tensor) -> None:
    """Raise a ValueError/TypeError naming what was expected when a tensor does not fit."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    if value.dtype != like.dtype or value.device != like.device:
        raise TypeError(f"{name} must be {like.dtype} on {like.device} like xg, "
                        f"got {value.dtype} on {value.device}")


def weight_grad(d_rows: Tensor, inputs: Tensor) -> Tensor:
    """Sum over all steps and rows of d_rows^T @ inputs, as one matrix product.

    d_rows (T, B, R), inputs (T, B, C) -> (R, C). Inactive rows contribute nothing because
    their d_rows are zero.
    """
    return d_rows.reshape(-1, d_rows.shape[-1]).t() @ inputs.reshape(-1, inputs.shape[-1])
