"""The optimizer and its learning-rate schedule (torch.optim.lr_scheduler.LambdaLR).

The rate of optimizer step s in epoch e is `lr × decay(e) × warm-up(s)`:
- decay(e): constant 1; cosine from 1 to min_lr/lr over the epochs; step: lr_decay every lr_step
  epochs; plateau: lr_decay after lr_step epochs without a better monitored score; never below
  min_lr/lr;
- warm-up(s) = min(1, (s + 1) / warmup_steps), or 1 without warm-up.
Decay follows epochs and warm-up follows steps, so one LambdaLR stepped per optimizer step carries
both; its factor is a small object whose state (the epoch, the plateau counter) travels in the
scheduler's state_dict, which makes --resume exact.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch.optim.lr_scheduler import LambdaLR

from lstmkit.training.config import TrainConfig


def make_optimizer(model: torch.nn.Module, config: TrainConfig,
                   groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """--optimizer with --lr and --weight-decay over the trainable parameters, or over `groups`
    (parameter groups with their own weight decay; the others take --weight-decay)."""
    params = groups if groups is not None else [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


class ScheduleFactor:
    """LambdaLR's factor: step -> decay(epoch) × warm-up(step). Plain attributes only, so the
    scheduler's state_dict (which keeps them) is JSON."""

    def __init__(self, config: TrainConfig):
        self.kind, self.epochs, self.warmup = config.lr_schedule, config.epochs, config.warmup_steps
        self.decay, self.every = config.lr_decay, config.lr_step
        self.floor = config.min_lr / config.lr  # min_lr as a fraction of lr
        self.epoch = 0
        self.plateau_scale, self.plateau_bad, self.plateau_best = 1.0, 0, None

    def decay_factor(self) -> float:
        if self.kind == "cosine":
            progress = min(self.epoch / max(self.epochs, 1), 1.0)
            return self.floor + 0.5 * (1 - self.floor) * (1 + math.cos(math.pi * progress))
        if self.kind == "step":
            return max(self.decay ** (self.epoch // self.every), self.floor)
        if self.kind == "plateau":
            return max(self.plateau_scale, self.floor)
        return 1.0

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        return self.decay_factor() * warm

    def end_of_epoch(self, value: float, lower_is_better: bool) -> None:
        """The plateau counter: lr_step epochs without a better `value` multiply by lr_decay."""
        if self.kind != "plateau":
            return
        better = self.plateau_best is None or (
            value < self.plateau_best if lower_is_better else value > self.plateau_best)
        if better:
            self.plateau_best, self.plateau_bad = value, 0
            return
        self.plateau_bad += 1
        if self.plateau_bad >= self.every:
            self.plateau_scale *= self.decay
            self.plateau_bad = 0


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> LambdaLR:
    return LambdaLR(optimizer, ScheduleFactor(config))


def factor_of(schedule: LambdaLR) -> ScheduleFactor:
    return schedule.lr_lambdas[0]


def set_step(schedule: LambdaLR, step: int, epoch: int) -> float:
    """Put the rate of optimizer step `step` (counted over the run) in epoch `epoch` into the
    optimizer; returns it."""
    factor = factor_of(schedule)
    if (schedule.last_epoch, factor.epoch) != (step, epoch):
        factor.epoch = epoch
        schedule.last_epoch = step - 1
        with warnings.catch_warnings():  # positioning the schedule, not stepping it out of order
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
            schedule.step()
    return schedule.get_last_lr()[0]


def load_old_state(schedule: LambdaLR, state: dict) -> None:
    """A schedule state saved by format-1 checkpoints (the plateau counter alone)."""
    factor = factor_of(schedule)
    factor.plateau_scale = state["plateau_scale"]
    factor.plateau_bad = state["plateau_bad"]
    factor.plateau_best = state["plateau_best"]
