"""What a task hands to `fit` (TrainSpec), what one step returns (StepOutput), what `fit` returns
(TrainResult), and the helpers that move and detach batches and states."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from lstmkit.training.budget import Budget, Pace


def log_line(line: str) -> None:
    """The run's own account (epoch summaries, the expected time) is its output: standard output.
    Standard error keeps warnings, refusals and the progress bar."""
    print(line, flush=True)


@dataclass
class StepOutput:
    loss: torch.Tensor                     # scalar to minimise: the mean over this batch
    metrics: dict = field(default_factory=dict)  # name -> float or 0-dim tensor (means over batch)
    size: int = 1                          # weight in epoch averages (examples, tokens, ...)
    state: Any = None                      # carried (detached) to the next step of the same pass


@dataclass
class TrainSpec:
    task: str                              # written into checkpoints; loading checks it
    model: nn.Module
    model_config: dict                     # JSON: what rebuilds the model (saved in config.json)
    train_batches: Iterable | Callable[[int], Iterable]   # or epoch -> that epoch's batches
    step: Callable[[nn.Module, Any, Any], StepOutput | torch.Tensor]  # (model, batch, state)
    valid_batches: Iterable | Callable[[], Iterable] | None = None
    evaluate: Callable[[nn.Module, torch.device], dict] | None = None  # instead of valid_batches
    monitor: str = "loss"                  # the validation metric that picks `best`
    lower_is_better: bool = True
    on_epoch_start: Callable[[int], None] | None = None
    extras: dict = field(default_factory=dict)  # JSON files saved beside the weights
    move_batch: Callable[[Any, torch.device], Any] | None = None  # default: move_to_device
    make_optimizer: Callable[[nn.Module, Any], torch.optim.Optimizer] | None = None  # (model, config)
    log: Callable[[str], None] | None = log_line  # one line per epoch; None: quiet
    budget: Budget | None = None           # the command's --max-minutes (default: from the config)
    score_start: bool = False              # validate before training: the starting weights (a
                                           # fitted part alone) compete for `best` too
    run_files: dict = field(default_factory=dict)  # file name -> text written into OUT when the
                                           # run starts (the command's settings: recipe.json)
    eval_items: int = 0                    # items one validation pass scores (time estimates)
    final_items: int = 0                   # items scored after training (the test set): the
                                           # budget keeps time for them
    # What else --resume must restore to continue exactly (e.g. a state carried across epochs):
    # tensors saved in OUT/last, and the function that takes them back (UsageError if unusable).
    task_state: Callable[[], dict[str, torch.Tensor]] | None = None
    load_task_state: Callable[[dict[str, torch.Tensor]], None] | None = None


@dataclass
class TrainResult:
    history: list                          # one dict per epoch, as in metrics.jsonl
    best_metrics: dict                     # validation metrics of the best epoch
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    device: torch.device
    out: Path | None
    model: nn.Module                       # holds the best weights when a validation set was given
    stopped_by_budget: bool = False        # --max-minutes ended the training
    pace: Pace | None = None               # seconds per training and per scored item

    @property
    def best_dir(self) -> Path | None:
        return self.out / "best" if self.out else None


def as_output(result) -> StepOutput:
    return result if isinstance(result, StepOutput) else StepOutput(loss=result)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (nested in tuples, lists, dicts, dataclasses) moved to `device`; the rest unchanged."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, nn.utils.rnn.PackedSequence):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [move_to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(batch, **{f.name: move_to_device(getattr(batch, f.name), device)
                                             for f in dataclasses.fields(batch)})
    return batch


def detach_state(state: Any) -> Any:
    """Cut the graph behind a carried state (truncated BPTT), keeping its structure."""
    if torch.is_tensor(state):
        return state.detach()
    if isinstance(state, (list, tuple)):
        items = [detach_state(s) for s in state]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state


def unwrap(model: nn.Module) -> nn.Module:
    """The task's own module inside a DistributedDataParallel wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
