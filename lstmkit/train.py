"""One training loop for every task.

A task builds its model and batches, then hands them to `fit`::

    from lstmkit import train

    config = train.config_from_args(args)          # after train.add_training_args(parser, ...)
    device = train.setup(config)                   # seed + device + torchrun group; BEFORE the model
    model = build_model(...)                       # same seed -> same initial weights on every rank
    result = train.fit(train.TrainSpec(
        task="sentiment",                          # stored in checkpoints; loading checks it
        model=model, model_config={...},           # JSON-able: enough to rebuild the model
        train_batches=lambda epoch: batches(epoch),# iterable, or callable(epoch) -> iterable
        valid_batches=valid,                       # iterable / callable() -> iterable / None
        step=step,                                 # (model, batch, state) -> StepOutput | loss
        evaluate=None,                             # (model, device) -> {"loss":..., "acc":...}
        monitor="acc", lower_is_better=False,      # early stopping and `best` follow this metric
        on_epoch_start=None,                       # (epoch) -> None
        extras={"vocab": vocab.to_json()},         # JSON files saved beside the weights
    ), config)
    result.best_metrics, result.history, result.best_dir

The step function computes the loss of one batch (already moved to the device)::

    def step(model, batch, state):                 # state: None at the start of every epoch/eval
        logits, state = model(batch.x, state)
        loss = F.cross_entropy(logits, batch.y)
        return train.StepOutput(loss, metrics={"acc": (logits.argmax(1) == batch.y).float().mean()},
                                size=len(batch.y), state=state)

The loop detaches a returned `state` (tensors, nested in tuples/lists/dicts) and passes it to the
next step: that is truncated backpropagation through time with the state carried across chunks.
`state` restarts as None at every epoch and every evaluation pass. Metrics are averaged over the
epoch weighted by `size`. With `evaluate=None` and `valid_batches` given, validation is the
size-weighted mean of the step's loss and metrics over the valid batches (`evaluate_batches`).

What the loop does: device choice (cuda if available, else cpu; --device), seeding, a tqdm progress
bar with loss and items/s, validation every epoch, early stopping (--patience), the best checkpoint
(`OUT/best`) and the last one (`OUT/last`, with optimizer, schedule, RNG and epoch state), gradient
clipping (--clip, by global norm), learning-rate warm-up and schedule, mixed precision on CUDA
(float16 + GradScaler), one JSON line of metrics per epoch in `OUT/metrics.jsonl`, `--resume`
reproducing the uninterrupted run (checkpoints are taken at epoch ends), and DDP under torchrun
(see lstmkit.distributed). Batch order must depend only on (seed, epoch): use `epoch_generator`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from lstmkit import checkpoint as ckpt
from lstmkit import distributed
from lstmkit.errors import UsageError
from lstmkit.train_config import (LRSchedule, TrainConfig, add_training_args,  # noqa: F401
                                  config_from_args, epoch_generator, make_optimizer, seed_everything,
                                  select_device)

__all__ = ["LRSchedule", "StepOutput", "TrainSpec", "TrainResult", "TrainConfig", "fit", "setup",
           "add_training_args", "config_from_args", "evaluate_batches", "epoch_generator",
           "detach_state", "move_to_device", "unwrap"]


@dataclass
class StepOutput:
    loss: torch.Tensor                     # scalar to minimise: the mean over this batch
    metrics: dict = field(default_factory=dict)  # name -> float or 0-dim tensor (means over batch)
    size: int = 1                          # weight in epoch averages (examples, tokens, ...)
    state: Any = None                      # carried (detached) to the next step of the same pass


@dataclass
class TrainSpec:
    task: str
    model: nn.Module
    model_config: dict
    train_batches: Iterable | Callable[[int], Iterable]
    step: Callable[[nn.Module, Any, Any], StepOutput | torch.Tensor]
    valid_batches: Iterable | Callable[[], Iterable] | None = None
    evaluate: Callable[[nn.Module, torch.device], dict] | None = None
    monitor: str = "loss"
    lower_is_better: bool = True
    on_epoch_start: Callable[[int], None] | None = None
    extras: dict = field(default_factory=dict)
    move_batch: Callable[[Any, torch.device], Any] | None = None  # default: move_to_device
    make_optimizer: Callable[[nn.Module, TrainConfig], torch.optim.Optimizer] | None = None


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

    @property
    def best_dir(self) -> Path | None:
        return self.out / "best" if self.out else None


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
    if hasattr(batch, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.replace(batch, **{f: move_to_device(getattr(batch, f), device)
                                             for f in batch.__dataclass_fields__})
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


def setup(config: TrainConfig) -> torch.device:
    """Seed, choose the device and join torchrun's process group; call before building the model."""
    device = select_device(config.device)
    info = distributed.from_environment()
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    distributed.init(device)
    seed_everything(config.seed)
    return device


def _as_output(result) -> StepOutput:
    return result if isinstance(result, StepOutput) else StepOutput(loss=result)


class _Averages:
    """Size-weighted running means of loss and metrics, kept as tensors (no GPU sync per step)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor | float] = {}
        self.count = 0

    def add(self, out: StepOutput) -> None:
        values = {"loss": out.loss.detach().float(), **out.metrics}
        for name, value in values.items():
            value = value.detach().float() if torch.is_tensor(value) else float(value)
            self.sums[name] = self.sums.get(name, 0.0) + value * out.size
        self.count += out.size

    def means(self) -> dict[str, float]:
        return {name: float(total) / max(self.count, 1) for name, total in self.sums.items()}


def _amp_context(device: torch.device, enabled: bool):
    if enabled:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    import contextlib
    return contextlib.nullcontext()


def evaluate_batches(model: nn.Module, batches: Iterable, step: Callable, device: torch.device,
                     move_batch: Callable | None = None, amp: bool = False) -> dict[str, float]:
    """Size-weighted mean of the step's loss and metrics over `batches`, in eval mode, no grad."""
    move = move_batch or move_to_device
    was_training = model.training
    model.eval()
    averages, state = _Averages(), None
    with torch.no_grad(), _amp_context(device, amp):
        for batch in batches:
            out = _as_output(step(model, move(batch, device), state))
            state = out.state
            averages.add(out)
    model.train(was_training)
    return averages.means()


def _batches(source, *args):
    return source(*args) if callable(source) else source


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is an optional extra
        return iterable
    total = len(iterable) if hasattr(iterable, "__len__") else None
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _is_better(value: float, best: float | None, lower_is_better: bool) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if lower_is_better else value > best


def _format(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())


@dataclass
class _Run:
    """Everything besides weights and optimizer that resuming must restore."""
    epochs_done: int = 0
    step: int = 0
    best_value: float | None = None
    best_epoch: int = 0
    best_metrics: dict = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list = field(default_factory=list)


def _prepare_out(out: Path, spec: TrainSpec, config: TrainConfig, info) -> None:
    existing = ckpt.resolve_checkpoint_dir(out / "last")
    if config.resume:
        if existing is None:
            raise UsageError(f"--resume: no checkpoint at {out / 'last'} to continue from")
        return
    names = ("best", "best.old", "best.tmp", "last", "last.old", "last.tmp", "metrics.jsonl")
    start_over(out, [out / name for name in names], existing is not None, config.overwrite, info)


def start_over(out: Path, old: Iterable[Path], occupied: bool, overwrite: bool, info) -> None:
    """Make `out` ready for a new run: refuse when it holds one (`occupied`) unless --overwrite,
    then remove the `old` paths there (folders or files; the main process, the others wait)."""
    if occupied and not overwrite:
        raise UsageError(f"{out} already holds a training run; pass --resume to continue it "
                         f"or --overwrite to start over")
    if info.is_main:
        import shutil
        for path in old:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    distributed.barrier(info)


def _restore(out: Path, spec, model, optimizer, schedule, scaler, device) -> _Run:
    last = ckpt.load_checkpoint(out / "last", task=spec.task, map_location=device, trainer=True)
    saved, wanted = last.model_config, json.loads(json.dumps(spec.model_config))
    if saved != wanted:
        differing = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        raise UsageError(f"--resume: {last.path} was trained with other model settings "
                         f"({', '.join(differing)}); use the same flags or --overwrite")
    model.load_state_dict(last.state_dict)
    meta = last.trainer_json
    ckpt.optimizer_state_from_parts(optimizer, {k: v.to(device) for k, v in
                                                last.trainer_tensors.items()}, meta["optimizer"])
    schedule.load_state_dict(meta["schedule"])
    if meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    ckpt.rng_state_from_parts(last.trainer_tensors, meta["rng"])
    return _Run(**meta["run"])


def _save_last(out: Path, spec, model, optimizer, schedule, scaler, run: _Run, info: dict) -> None:
    optim_tensors, optim_meta = ckpt.optimizer_state_to_parts(optimizer)
    rng_tensors, rng_meta = ckpt.rng_state_to_parts()
    ckpt.save_checkpoint(
        out / "last", task=spec.task, model_config=spec.model_config,
        state_dict=model.state_dict(), extras=spec.extras, info=info,
        trainer_tensors={**optim_tensors, **rng_tensors},
        trainer_json={"optimizer": optim_meta, "rng": rng_meta, "schedule": schedule.state_dict(),
                      "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                      "run": run.__dict__})


def fit(spec: TrainSpec, config: TrainConfig) -> TrainResult:
    """Train `spec.model` as `config` says; see the module docstring. Returns a TrainResult."""
    from lstmkit.train_config import validate
    validate(config)
    device = setup(config)
    info = distributed.from_environment()
    # Different dropout masks per rank (rank 0 keeps the single-process stream).
    seed_everything(config.seed + 7919 * info.rank)
    amp = device.type == "cuda" if config.amp is None else config.amp
    if amp and device.type != "cuda":
        raise UsageError("--amp (mixed precision) needs a CUDA device; drop --amp on CPU")
    model = spec.model.to(device)
    optimizer = (spec.make_optimizer or make_optimizer)(model, config)
    schedule = LRSchedule(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    move = spec.move_batch or move_to_device
    out = Path(config.out) if config.out is not None else None
    run = _Run()
    best_state = None
    if out is not None:
        _prepare_out(out, spec, config, info)
        if config.resume:
            run = _restore(out, spec, model, optimizer, schedule, scaler, device)
            best = ckpt.resolve_checkpoint_dir(out / "best")
            if best is not None:
                best_state = ckpt.load_checkpoint(best, task=spec.task).state_dict
    train_model = nn.parallel.DistributedDataParallel(model) if info.enabled else model
    has_validation = spec.evaluate is not None or spec.valid_batches is not None
    show = config.progress and info.is_main

    for epoch in range(run.epochs_done, config.epochs):
        if run.stopped_early:
            break
        if spec.on_epoch_start is not None:
            spec.on_epoch_start(epoch)
        model.train()
        averages, state, started = _Averages(), None, time.perf_counter()
        source = _batches(spec.train_batches, epoch)
        batches = distributed.shard(source, info) if info.enabled else source
        if config.max_batches:
            import itertools
            batches = itertools.islice(batches, config.max_batches)
        bar = _progress(batches, show, f"epoch {epoch + 1}/{config.epochs}")
        lr = schedule.apply(epoch, run.step)
        for i, batch in enumerate(bar):
            lr = schedule.apply(epoch, run.step)
            with _amp_context(device, amp):
                out_step = _as_output(spec.step(train_model, move(batch, device), state))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out_step.loss).backward()
            if config.clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            scaler.step(optimizer)
            scaler.update()
            state = detach_state(out_step.state)
            averages.add(out_step)
            run.step += 1
            if show and hasattr(bar, "set_postfix") and (i % 20 == 0):
                seconds = time.perf_counter() - started
                bar.set_postfix(loss=f"{averages.means()['loss']:.4f}",
                                items_s=f"{averages.count / max(seconds, 1e-9):.0f}")
        seconds = time.perf_counter() - started
        train_metrics = averages.means()
        if averages.count == 0:
            raise UsageError(f"epoch {epoch + 1}: no training batches (empty training data?)")
        if not math.isfinite(train_metrics["loss"]):
            raise UsageError(f"epoch {epoch + 1}: the training loss became {train_metrics['loss']}; "
                             f"lower --lr or set --clip")

        if spec.evaluate is not None:
            valid_metrics = dict(spec.evaluate(model, device))
        elif spec.valid_batches is not None:
            valid_metrics = evaluate_batches(model, _batches(spec.valid_batches), spec.step, device,
                                             move, amp)
        else:
            valid_metrics = {}
        watched = valid_metrics if has_validation else train_metrics
        if spec.monitor not in watched:
            raise KeyError(f"monitored metric {spec.monitor!r} not among {sorted(watched)}")
        value = float(watched[spec.monitor])
        improved = _is_better(value, run.best_value, spec.lower_is_better)
        run.epochs_done = epoch + 1
        if improved:
            run.best_value, run.best_epoch, run.bad_epochs = value, epoch + 1, 0
            run.best_metrics = dict(watched)
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            run.bad_epochs += 1
        run.stopped_early = bool(config.patience and run.bad_epochs >= config.patience)
        schedule.end_of_epoch(value, spec.lower_is_better)
        record = {"epoch": epoch + 1, "step": run.step, "lr": lr, "seconds": round(seconds, 3),
                  "items_per_second": round(averages.count / max(seconds, 1e-9), 1),
                  **{f"train_{k}": v for k, v in train_metrics.items()},
                  **{f"valid_{k}": v for k, v in valid_metrics.items()}, "best": improved}
        run.history.append(record)

        if out is not None and info.is_main:
            info_json = {"epoch": epoch + 1, "step": run.step, "metrics": watched}
            if improved:  # best before last: a kill in between leaves both readable
                ckpt.save_checkpoint(out / "best", task=spec.task, model_config=spec.model_config,
                                     state_dict=best_state, extras=spec.extras, info=info_json)
            _save_last(out, spec, model, optimizer, schedule, scaler, run, info_json)
            with open(out / "metrics.jsonl", "w", encoding="utf-8") as f:  # rewritten: resume-safe
                f.writelines(json.dumps(r) + "\n" for r in run.history)
        if info.is_main:
            import sys
            valid_part = f"  |  valid {_format(valid_metrics)}" if valid_metrics else ""
            print(f"epoch {epoch + 1}/{config.epochs}  train {_format(train_metrics)}{valid_part}  |  "
                  f"{seconds:.1f}s {record['items_per_second']:.0f} items/s"
                  f"{'  * best' if improved else ''}", file=sys.stderr, flush=True)
        distributed.barrier(info)

    if best_state is not None and has_validation:
        model.load_state_dict(best_state)
    return TrainResult(history=run.history, best_metrics=run.best_metrics, best_epoch=run.best_epoch,
                       epochs_run=run.epochs_done, stopped_early=run.stopped_early, device=device,
                       out=out, model=model)
