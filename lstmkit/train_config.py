"""Settings of the training loop, shared CLI flags, optimizer and learning-rate schedule.

Every task's `lstmkit train TASK` gets the same flags from `add_training_args(parser, **defaults)`;
a task changes only the defaults (e.g. `add_training_args(p, epochs=6, lr=2e-3, batch_size=64)`).
`config_from_args(args)` turns the parsed flags into a `TrainConfig`. See lstmkit/train.py.
"""
from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from lstmkit.errors import UsageError

SCHEDULES = ("constant", "cosine", "step", "plateau")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class TrainConfig:
    out: Path | None = None          # run folder: best/, last/, metrics.jsonl; None = save nothing
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32             # read by the task when it builds batches
    optimizer: str = "adam"          # adam | adamw | sgd (momentum 0.9)
    weight_decay: float = 0.0
    clip: float | None = 5.0         # max global gradient norm; None or 0 = no clipping
    lr_schedule: str = "constant"    # constant | cosine (over epochs) | step | plateau
    lr_decay: float = 0.5            # factor for step / plateau
    lr_step: int = 1                 # epochs between decays (step) / epochs without gain (plateau)
    min_lr: float = 0.0
    warmup_steps: int = 0            # linear warm-up over the first optimizer steps
    patience: int | None = None      # stop after this many epochs without a better monitored metric
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    amp: bool | None = None          # mixed precision; None = on for CUDA, off for CPU
    resume: bool = False             # continue OUT/last
    overwrite: bool = False          # start over in an OUT that already holds a run
    progress: bool = True            # tqdm bar (rank 0 only)
    max_batches: int | None = None   # cap on train batches per epoch (smoke runs)


def add_training_args(parser: argparse.ArgumentParser, **defaults) -> argparse._ArgumentGroup:
    """Add the loop's flags; keyword arguments override TrainConfig's defaults for this task."""
    base = TrainConfig(**{k: v for k, v in defaults.items() if k in {f.name for f in fields(TrainConfig)}})
    unknown = set(defaults) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise TypeError(f"add_training_args: unknown defaults {sorted(unknown)}")
    g = parser.add_argument_group("training")
    g.add_argument("--out", type=Path, default=base.out, required=base.out is None,
                   help="run folder: OUT/best, OUT/last (checkpoints), OUT/metrics.jsonl")
    g.add_argument("--epochs", type=int, default=base.epochs, help="default %(default)s")
    g.add_argument("--lr", type=float, default=base.lr, help="learning rate (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=base.batch_size, help="default %(default)s")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=base.optimizer)
    g.add_argument("--weight-decay", type=float, default=base.weight_decay)
    g.add_argument("--clip", type=float, default=base.clip,
                   help="max gradient norm, 0 = off (default %(default)s)")
    g.add_argument("--lr-schedule", choices=SCHEDULES, default=base.lr_schedule)
    g.add_argument("--lr-decay", type=float, default=base.lr_decay, help="factor for step/plateau")
    g.add_argument("--lr-step", type=int, default=base.lr_step,
                   help="epochs between decays (step) or without improvement (plateau)")
    g.add_argument("--min-lr", type=float, default=base.min_lr)
    g.add_argument("--warmup-steps", type=int, default=base.warmup_steps)
    g.add_argument("--patience", type=int, default=base.patience,
                   help="early stopping: epochs without improvement (default: off)")
    g.add_argument("--seed", type=int, default=base.seed)
    g.add_argument("--device", default=base.device, help="auto | cpu | cuda | cuda:N")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=base.amp,
                   help="mixed precision (default: on for CUDA)")
    g.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/last")
    g.add_argument("--overwrite", action="store_true", help="start over in an OUT holding a run")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--max-batches", type=int, default=base.max_batches,
                   help="at most this many train batches per epoch (quick tries)")
    return g


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    config = TrainConfig(**values)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    checks = [(config.epochs >= 1, f"--epochs must be >= 1, got {config.epochs}"),
              (config.lr > 0, f"--lr must be > 0, got {config.lr}"),
              (config.batch_size >= 1, f"--batch-size must be >= 1, got {config.batch_size}"),
              (config.patience is None or config.patience >= 1,
               f"--patience must be >= 1, got {config.patience}"),
              (config.clip is None or config.clip >= 0, f"--clip must be >= 0, got {config.clip}"),
              (config.lr_schedule in SCHEDULES, f"--lr-schedule must be one of {SCHEDULES}"),
              (config.optimizer in OPTIMIZERS, f"--optimizer must be one of {OPTIMIZERS}"),
              (config.max_batches is None or config.max_batches >= 1, "--max-batches must be >= 1")]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator for shuffling epoch `epoch`: the same on every rank and after --resume."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


class LRSchedule:
    """Learning rate as a function of (epoch, step) plus the plateau counter: a small JSON state.

    lr = base(epoch) * min(1, (step + 1) / warmup_steps), with base from the schedule:
    constant; cosine from lr to min_lr over `epochs`; step: times lr_decay every lr_step epochs;
    plateau: times lr_decay after lr_step epochs without a better monitored metric.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig):
        self.optimizer, self.config = optimizer, config
        self.plateau_scale, self.plateau_bad, self.plateau_best = 1.0, 0, None

    def base_lr(self, epoch: int) -> float:
        c = self.config
        if c.lr_schedule == "cosine":
            progress = min(epoch / max(c.epochs, 1), 1.0)
            return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))
        if c.lr_schedule == "step":
            return max(c.lr * c.lr_decay ** (epoch // max(c.lr_step, 1)), c.min_lr)
        if c.lr_schedule == "plateau":
            return max(c.lr * self.plateau_scale, c.min_lr)
        return c.lr

    def apply(self, epoch: int, step: int) -> float:
        warm = min(1.0, (step + 1) / self.config.warmup_steps) if self.config.warmup_steps else 1.0
        lr = self.base_lr(epoch) * warm
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def end_of_epoch(self, value: float | None, lower_is_better: bool) -> None:
        if self.config.lr_schedule != "plateau" or value is None:
            return
        better = self.plateau_best is None or (
            value < self.plateau_best if lower_is_better else value > self.plateau_best)
        if better:
            self.plateau_best, self.plateau_bad = value, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad >= self.config.lr_step:
                self.plateau_scale *= self.config.lr_decay
                self.plateau_bad = 0

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "plateau_bad": self.plateau_bad,
                "plateau_best": self.plateau_best}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = state["plateau_scale"]
        self.plateau_bad = state["plateau_bad"]
        self.plateau_best = state["plateau_best"]
