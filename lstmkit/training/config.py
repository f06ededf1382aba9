"""How a model is trained: the settings every `lstmkit train TASK` shares, as one dataclass.

Each task's recipe holds a `TrainConfig` with its own defaults (e.g. `TrainConfig(epochs=8,
lr=2e-3)`); lstmkit.recipe turns the fields into the `training` flags of its command.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from lstmkit.errors import UsageError
from lstmkit.recipe import above, at_least, check_values, option

SCHEDULES = ("constant", "cosine", "step", "plateau")
OPTIMIZERS = ("adam", "adamw", "sgd")


def backend_names() -> tuple[str, ...]:
    """The valid `backend=` names of lstmkit.LSTM (the engine registry's), for --backend's choices."""
    from lstmkit import engines
    return tuple(engines.names())


@dataclass
class TrainConfig:
    out: Path | None = option(None, "run folder: OUT/best, OUT/last (checkpoints), OUT/metrics.jsonl",
                              metavar="DIR")
    epochs: int = option(10, "passes over the training data", check=at_least(1))
    lr: float = option(1e-3, "learning rate", check=above(0))
    batch_size: int = option(32, "examples (or streams) per optimizer step", check=at_least(1))
    optimizer: str = option("adam", "adam, adamw or sgd (momentum 0.9)", choices=OPTIMIZERS)
    weight_decay: float = option(0.0, "L2 penalty (decoupled for adamw)", check=at_least(0))
    clip: float | None = option(5.0, "max global gradient norm; 0 = no clipping", check=at_least(0))
    lr_schedule: str = option("constant", "constant; cosine (to --min-lr over the epochs); step "
                              "(times --lr-decay every --lr-step epochs); plateau (times --lr-decay "
                              "after --lr-step epochs without a better validation score)",
                              choices=SCHEDULES)
    lr_decay: float = option(0.5, "factor of the step and plateau schedules", check=above(0))
    lr_step: int = option(1, "epochs between decays (step) or without gain (plateau)",
                          check=at_least(1))
    min_lr: float = option(0.0, "the learning rate never goes below this", check=at_least(0))
    warmup_steps: int = option(0, "linear warm-up over the first optimizer steps", check=at_least(0))
    patience: int | None = option(None, "early stopping: epochs without a better validation score",
                                  check=at_least(1), default_text="off")
    seed: int = option(0, "seed for the data split, shuffles, weights and dropout")
    device: str = option("auto", "auto (CUDA when there is one), cpu, cuda or cuda:N")
    amp: bool | None = option(None, "mixed precision (float16 autocast + gradient scaling)",
                              default_text="on for CUDA, off for CPU")
    backend: str = option("auto", "lstmkit.LSTM engine: a choice for this run, not saved with the "
                          "model", choices=backend_names)
    resume: bool = option(False, "continue the run in OUT from OUT/last")
    overwrite: bool = option(False, "start over in an OUT that holds a run")
    progress: bool = option(True, "progress bar (rank 0 only)")
    max_batches: int | None = option(None, "at most this many training batches per epoch (quick tries)",
                                     check=at_least(1), default_text="all")
    max_minutes: float | None = option(None, "time budget of the whole command, minutes: training "
                                       "(every phase) stops in time to score the best checkpoint "
                                       "and write the report", check=above(0),
                                       default_text="no limit")


def validate(config: TrainConfig) -> None:
    """UsageError for settings built in code that the flags would have refused."""
    check_values(config)


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
