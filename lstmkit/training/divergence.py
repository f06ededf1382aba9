"""Stopping a run whose loss has left the finite world or exploded, before it writes a checkpoint.

A loss that becomes NaN or infinite never comes back, and one that grows ten-thousandfold past
where the run started has left any useful minimum (a learning rate of 1e10 takes a classifier's
loss from 0.7 to 1e20 in a few steps). Training on would only overwrite nothing useful: the
checkpoints are written at epoch ends, so stopping here keeps the last good ones.

The check costs one device-to-host copy every CHECK_EVERY steps (the running peak is kept on the
device between checks), and one at every epoch end.
"""
from __future__ import annotations

import math

import torch

from lstmkit.errors import UsageError

CHECK_EVERY = 10
GROWTH = 1e4  # how far past max(1, |first loss|) a loss may grow before the run counts as diverged


class TrainingDiverged(UsageError):
    """The loss became non-finite or exploded; the message says what is kept and what to change."""


class DivergenceGuard:
    """Watches the training losses of a run; `observe` and `settle` return what went wrong, or None."""

    def __init__(self):
        self.limit: float | None = None   # set from the first loss seen
        self.peak: torch.Tensor | None = None
        self.seen = 0

    def observe(self, loss: torch.Tensor) -> str | None:
        value = loss.detach().float()
        # torch.maximum keeps a NaN once it has appeared, so no step slips between checks.
        self.peak = value if self.peak is None else torch.maximum(self.peak, value)
        self.seen += 1
        return self.settle() if self.limit is None or self.seen % CHECK_EVERY == 0 else None

    def settle(self) -> str | None:
        """The check of the losses observed since the last one."""
        if self.peak is None:
            return None
        peak, self.peak = float(self.peak), None
        if not math.isfinite(peak):
            return f"the loss became {peak}"
        if self.limit is None:
            self.limit = GROWTH * max(1.0, abs(peak))
        elif peak > self.limit:
            return f"the loss grew to {peak:.3g}, over {GROWTH:,.0f} times where it started"
        return None
