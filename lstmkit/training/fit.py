"""`fit`: the one training loop, for every task and for the demo's experiments.

A task builds its model and batches and hands them over in a TrainSpec (lstmkit.training.spec);
`fit` does the rest: device and seeding, a progress bar, validation every epoch, early stopping
(--patience), the best checkpoint (OUT/best) and the last one (OUT/last, with optimizer, schedule,
RNG and epoch state, so --resume continues exactly as the uninterrupted run would have), gradient
clipping, the learning-rate schedule (lstmkit.training.schedule), mixed precision on CUDA, one JSON
line of metrics per epoch in OUT/metrics.jsonl, and DDP under torchrun (lstmkit.training.distributed).

The step function computes the loss of one batch (already on the device)::

    def step(model, batch, state):                 # state: None at the start of every epoch/eval
        logits, state = model(batch.x, state)
        loss = F.cross_entropy(logits, batch.y)
        return StepOutput(loss, metrics={"acc": (logits.argmax(1) == batch.y).float().mean()},
                          size=len(batch.y), state=state)

The loop detaches a returned `state` and passes it to the next step: truncated backpropagation
through time with the state carried across chunks; it restarts as None at every epoch and every
evaluation pass. Metrics are averaged over the epoch weighted by `size`. Without `evaluate`,
validation is the size-weighted mean of the step's loss and metrics over `valid_batches`.
Batch order must depend only on (seed, epoch): use `epoch_generator`. Checkpoints are taken at
epoch ends.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from lstmkit.errors import UsageError
from lstmkit.training import atomic, distributed, lock, run_folder
from lstmkit.training import checkpoint as ckpt
from lstmkit.training.budget import Budget, Pace, Timekeeper
from lstmkit.training.config import TrainConfig, seed_everything, select_device, validate
from lstmkit.training.divergence import DivergenceGuard, TrainingDiverged
from lstmkit.training.progress import progress
from lstmkit.training.resume import RunState, restore, save_last
from lstmkit.training.schedule import factor_of, make_optimizer, make_schedule, set_step
from lstmkit.training.spec import (StepOutput, TrainResult, TrainSpec, as_output, detach_state,
                                   move_to_device)


def setup(config: TrainConfig) -> torch.device:
    """Seed, choose the device and join torchrun's process group; call before building the model."""
    device = select_device(config.device)
    info = distributed.from_environment()
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    distributed.init(device)
    seed_everything(config.seed)
    return device


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
    return contextlib.nullcontext()


def evaluate_batches(model: nn.Module, batches: Iterable, step: Callable, device: torch.device,
                     move_batch: Callable | None = None, amp: bool = False,
                     show: bool = False, description: str = "scoring") -> dict[str, float]:
    """Size-weighted mean of the step's loss and metrics over `batches`, in eval mode, no grad
    (a bar with `show`, else a status line every minute of a long pass)."""
    return _evaluate(model, batches, step, device, move_batch, amp, show, description).means()


def _evaluate(model, batches, step, device, move_batch, amp, show, description) -> _Averages:
    move = move_batch or move_to_device
    was_training = model.training
    model.eval()
    averages, state = _Averages(), None
    with torch.no_grad(), _amp_context(device, amp):
        for batch in progress(batches, show, description):
            out = as_output(step(model, move(batch, device), state))
            state = out.state
            averages.add(out)
    model.train(was_training)
    return averages


def _batches(source, *args):
    return source(*args) if callable(source) else source


class _Sized:
    """An iterator with a known length (--max-batches of a sized source), for bars and estimates."""

    def __init__(self, iterator, length: int | None):
        self.iterator, self.length = iterator, length

    def __iter__(self):
        return iter(self.iterator)

    def __len__(self) -> int:
        return self.length if self.length is not None else 0


def _is_better(value: float, best: float | None, lower_is_better: bool) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if lower_is_better else value > best


def _format(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())


class _Trainer:
    """One run of `fit`: the model, optimizer, schedule and counters, an epoch at a time."""

    def __init__(self, spec: TrainSpec, config: TrainConfig):
        validate(config)
        self.spec, self.config = spec, config
        self.device = setup(config)
        self.info = distributed.from_environment()
        # Different dropout masks per rank (rank 0 keeps the single-process stream).
        seed_everything(config.seed + 7919 * self.info.rank)
        self.amp = self.device.type == "cuda" if config.amp is None else config.amp
        if self.amp and self.device.type != "cuda":
            raise UsageError("--amp (mixed precision) needs a CUDA device; drop --amp on CPU")
        self.model = spec.model.to(self.device)
        self.optimizer = (spec.make_optimizer or make_optimizer)(self.model, config)
        self.schedule = make_schedule(self.optimizer, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.move = spec.move_batch or move_to_device
        self.out = Path(config.out) if config.out is not None else None
        self.run, self.best_state = RunState(), None
        self.guard = DivergenceGuard()
        if self.out is not None:
            has_run = ckpt.resolve_checkpoint_dir(self.out / "last") is not None
            run_folder.prepare(self.out, config.resume, config.overwrite, has_run, self.info)
            if config.resume:
                self.run = restore(self.out, spec, config, self.model, self.optimizer,
                                   self.schedule, self.scaler, self.device)
                best = ckpt.resolve_checkpoint_dir(self.out / "best")
                if best is not None:
                    self.best_state = ckpt.load_checkpoint(best, task=spec.task).state_dict
                    ckpt.check_fits(self.model, self.best_state, best / "model.safetensors",
                                    "this run's settings")
            if self.info.is_main and spec.run_files:  # once the checks above let the run start
                self.out.mkdir(parents=True, exist_ok=True)
                for name, text in spec.run_files.items():
                    atomic.write_text(self.out / name, text)
        self.train_model = nn.parallel.DistributedDataParallel(self.model) if self.info.enabled \
            else self.model
        self.has_validation = spec.evaluate is not None or spec.valid_batches is not None
        self.budget = spec.budget or Budget.start(config.max_minutes)
        self.pace = Pace()
        self.clock = Timekeeper(self.budget, self.pace, spec.eval_items, spec.final_items)
        self.stopped_by_budget = False

    def train_epoch(self, epoch: int) -> tuple[dict, float, float, int]:
        """One pass over the training batches (cut short by the time budget): (mean metrics, lr,
        seconds, items)."""
        config = self.config
        self.model.train()
        averages, state, started = _Averages(), None, time.perf_counter()
        batches = self._epoch_batches(epoch)
        show = config.progress and self.info.is_main
        bar = progress(batches, show, f"epoch {epoch + 1}/{config.epochs}",
                       status=lambda: f"loss {averages.means().get('loss', math.nan):.4f}")
        lr = set_step(self.schedule, self.run.step, epoch)
        for i, batch in enumerate(bar):
            batch_started = time.perf_counter()
            lr = set_step(self.schedule, self.run.step, epoch)
            out = self._optimizer_step(batch, state)
            state = detach_state(out.state)
            averages.add(out)
            self.run.step += 1
            self.clock.batch_done(time.perf_counter() - batch_started, out.size)
            self._announce(epoch, batches, averages, i + 1)
            self._stop_if_diverged(self.guard.observe(out.loss), epoch, lr)
            if show and hasattr(bar, "set_postfix") and (i % 20 == 0):
                seconds = time.perf_counter() - started
                bar.set_postfix(loss=f"{averages.means()['loss']:.4f}",
                                items_s=f"{averages.count / max(seconds, 1e-9):.0f}")
            if self.budget.limited and distributed.any_rank(self.clock.out_of_time(), self.info,
                                                            self.device):
                self._stop_for_time(epoch, i + 1, batches)
                break
        seconds = time.perf_counter() - started
        metrics = averages.means()
        if averages.count == 0:
            raise UsageError(f"epoch {epoch + 1}: no training batches (empty training data?)")
        self._stop_if_diverged(self.guard.settle(), epoch, lr)
        self._announce(epoch, batches, averages, None)
        return metrics, lr, seconds, averages.count

    def _epoch_batches(self, epoch: int):
        source = _batches(self.spec.train_batches, epoch)
        batches = source if not self.info.enabled or distributed.is_sharded(source) \
            else distributed.shard(source, self.info)
        if self.config.max_batches:
            total = min(len(source), self.config.max_batches) if hasattr(source, "__len__") else None
            batches = _Sized(itertools.islice(batches, self.config.max_batches), total)
        return batches

    def _optimizer_step(self, batch, state) -> StepOutput:
        config = self.config
        with _amp_context(self.device, self.amp):
            out = as_output(self.spec.step(self.train_model, self.move(batch, self.device), state))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        if config.clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return out

    def _announce(self, epoch: int, batches, averages: _Averages, done: int | None) -> None:
        """The expected-time line, once per phase: when enough batches are timed (`done` batches
        into the epoch), or at the end of the first epoch (`done` None)."""
        clock = self.clock
        total = len(batches) if hasattr(batches, "__len__") else None
        if clock.announced or (done is not None and (total is None or not clock.ready_to_announce())):
            return
        per_epoch = averages.count if done is None else round(averages.count / done * total)
        epochs_left = self.config.epochs - epoch - (done is None)
        if epochs_left == 0:  # the phase is over: nothing left to expect
            clock.announced = True
            return
        line = clock.announce(epochs_left, per_epoch)
        if self.info.is_main and self.spec.log is not None:
            self.spec.log(line)

    def _stop_for_time(self, epoch: int, done: int, batches) -> None:
        self.stopped_by_budget = True
        if self.info.is_main and self.spec.log is not None:
            total = f"/{len(batches)}" if hasattr(batches, "__len__") else ""
            self.spec.log(f"time budget: epoch {epoch + 1} stops after {done}{total} batches, "
                          f"leaving time to validate and score (--max-minutes "
                          f"{self.budget.minutes:g})")
    def _stop_if_diverged(self, problem: str | None, epoch: int, lr: float) -> None:
        """Raise TrainingDiverged for `problem` (see lstmkit.training.divergence), before this
        epoch writes anything: the checkpoints of the last good epoch stay as they are."""
        if problem is None:
            return
        run = self.run
        kept = (f"the checkpoints of epoch {run.epochs_done} are kept in {self.out} (best: epoch "
                f"{run.best_epoch})" if self.out is not None and run.epochs_done
                else "no checkpoint was written")
        raise TrainingDiverged(f"training diverged in epoch {epoch + 1} at step {run.step}: "
                               f"{problem}; {kept}; try a lower --lr (it was {lr:g}) or "
                               f"gradient clipping (--clip)")

    def validate(self) -> dict:
        """The validation metrics (timed: the budget's reserve and estimates use the speed)."""
        spec, started = self.spec, time.perf_counter()
        show = self.config.progress and self.info.is_main
        if spec.evaluate is not None:
            metrics, items = dict(spec.evaluate(self.model, self.device)), spec.eval_items
        elif spec.valid_batches is not None:
            averages = _evaluate(self.model, _batches(spec.valid_batches), spec.step, self.device,
                                 self.move, self.amp, show, "validation")
            metrics, items = averages.means(), spec.eval_items or averages.count
            self.clock.eval_items = items
        else:
            return {}
        self.pace.add_scoring(time.perf_counter() - started, items)
        return metrics

    def end_epoch(self, epoch: int, train_metrics: dict, valid_metrics: dict, lr: float,
                  seconds: float, items: int) -> None:
        """Best and early-stopping bookkeeping, checkpoints, metrics.jsonl and the epoch's line."""
        spec, run = self.spec, self.run
        watched = valid_metrics if self.has_validation else train_metrics
        if spec.monitor not in watched:
            raise KeyError(f"monitored metric {spec.monitor!r} not among {sorted(watched)}")
        value = float(watched[spec.monitor])
        improved = _is_better(value, run.best_value, spec.lower_is_better)
        run.epochs_done = epoch + 1
        if improved:
            run.best_value, run.best_epoch, run.bad_epochs = value, epoch + 1, 0
            run.best_metrics = dict(watched)
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in self.model.state_dict().items()}
        else:
            run.bad_epochs += 1
        run.stopped_early = bool(self.config.patience and run.bad_epochs >= self.config.patience)
        factor_of(self.schedule).end_of_epoch(value, spec.lower_is_better)
        record = {"epoch": epoch + 1, "step": run.step, "lr": lr, "seconds": round(seconds, 3),
                  "items_per_second": round(items / max(seconds, 1e-9), 1),
                  **{f"train_{k}": v for k, v in train_metrics.items()},
                  **{f"valid_{k}": v for k, v in valid_metrics.items()}, "best": improved}
        if self.stopped_by_budget:
            record["stopped_by_budget"] = True
        run.history.append(record)
        if self.out is not None and self.info.is_main:
            info_json = {"epoch": epoch + 1, "step": run.step, "metrics": watched}
            if improved:  # best before last: a kill in between leaves both readable
                ckpt.save_checkpoint(self.out / "best", task=spec.task, model_config=spec.model_config,
                                     state_dict=self.best_state, extras=spec.extras, info=info_json)
            save_last(self.out, spec, self.config, self.model, self.optimizer, self.schedule,
                      self.scaler, run, info_json)
            atomic.write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n"
                                                                  for r in run.history))
        if self.info.is_main and spec.log is not None:
            valid_part = f"  |  valid {_format(valid_metrics)}" if valid_metrics else ""
            spec.log(f"epoch {epoch + 1}/{self.config.epochs}  train {_format(train_metrics)}"
                     f"{valid_part}  |  {seconds:.1f}s {record['items_per_second']:.0f} items/s"
                     f"{'  * best' if improved else ''}")
        distributed.barrier(self.info)

    def score_start(self) -> None:
        """The untrained model's validation score as the best so far (epoch 0), saved as OUT/best."""
        spec, run = self.spec, self.run
        metrics = self.validate()
        run.best_value, run.best_epoch, run.best_metrics = float(metrics[spec.monitor]), 0, metrics
        self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.out is not None and self.info.is_main:
            ckpt.save_checkpoint(self.out / "best", task=spec.task, model_config=spec.model_config,
                                 state_dict=self.best_state, extras=spec.extras,
                                 info={"epoch": 0, "step": 0, "metrics": metrics})
        if self.info.is_main and spec.log is not None:
            spec.log(f"before training  |  valid {_format(metrics)}")

    def result(self) -> TrainResult:
        if self.best_state is not None and self.has_validation:
            self.model.load_state_dict(self.best_state)
        run = self.run
        return TrainResult(history=run.history, best_metrics=run.best_metrics,
                           best_epoch=run.best_epoch, epochs_run=run.epochs_done,
                           stopped_early=run.stopped_early, device=self.device, out=self.out,
                           model=self.model, stopped_by_budget=self.stopped_by_budget,
                           pace=self.pace)


def fit(spec: TrainSpec, config: TrainConfig) -> TrainResult:
    """Train `spec.model` as `config` says; see the module docstring. Returns a TrainResult.
    The run folder is held by this process for the whole run (lstmkit.training.lock)."""
    out = config.out if distributed.from_environment().is_main else None
    with lock.holding(run_folder.ensure_writable(out) if out is not None else None):
        trainer = _Trainer(spec, config)
        if spec.score_start and trainer.has_validation and trainer.run.epochs_done == 0:
            trainer.score_start()
        for epoch in range(trainer.run.epochs_done, config.epochs):
            if trainer.run.stopped_early or trainer.stopped_by_budget:
                break
            if trainer.budget.limited and trainer.run.step > 0 and \
                    distributed.any_rank(trainer.clock.out_of_time(), trainer.info, trainer.device):
                trainer.stopped_by_budget = True  # not even part of an epoch fits any more
                break
            if spec.on_epoch_start is not None:
                spec.on_epoch_start(epoch)
            train_metrics, lr, seconds, items = trainer.train_epoch(epoch)
            trainer.end_epoch(epoch, train_metrics, trainer.validate(), lr, seconds, items)
        return trainer.result()
