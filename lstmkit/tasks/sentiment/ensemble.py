"""`lstmkit train sentiment --ensemble K`: K fine-tunings from one start, predicting together.

Every member starts from the same weights (after any pretraining or transfer, which run once) and
trains on the same split with its own seed (seed, seed+1, ...: its own shuffles and dropout
masks); the ensemble predicts the mean of their probabilities (model.SentimentEnsemble).
Sharing the start keeps the cost at one pretraining plus K fine-tunings.

The run folder:

    OUT/members/start/     the weights every member starts from, so --resume can begin a member
                           that had not started yet
    OUT/members/1 ... K/   each member's own training run (best/, last/, metrics.jsonl)
    OUT/best/              the ensemble: what `lstmkit predict sentiment --model OUT` loads

--resume continues the member that was interrupted and skips the finished ones (their runs end at
once: all epochs done), so a killed ensemble loses at most the current epoch.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

from torch import nn

from lstmkit.errors import UsageError
from lstmkit import training
from lstmkit.training import TrainConfig, TrainResult, TrainSpec, distributed
from lstmkit.training.checkpoint import (load_checkpoint, load_weights, resolve_checkpoint_dir,
                                         save_checkpoint)
from lstmkit.training.run_folder import start_over

MEMBERS = "members"


def prepare_out(out: Path | None, members: int, config: TrainConfig) -> None:
    """Refuse to mix a new run with an old one in `out` (single model or ensemble) unless
    --overwrite (then the old ensemble parts go) or --resume."""
    if out is None or config.resume:
        return
    taken = [out / MEMBERS] + ([out / "best", out / "last", out / "metrics.jsonl"] if members > 1 else [])
    taken = [path for path in taken if path.exists()]
    start_over(out, taken, bool(taken), config.overwrite, distributed.from_environment())


def shared_start(model: nn.Module, out: Path | None, config: TrainConfig, task: str,
                 model_config: dict) -> None:
    """Save the members' starting weights (a new run) or load them into `model` (--resume)."""
    if out is None:
        return
    start = out / MEMBERS / "start"
    if config.resume:
        if resolve_checkpoint_dir(start) is None:
            raise UsageError(f"--resume: {out} holds no ensemble (no {start}); resume it without "
                             f"--ensemble, or start over with --overwrite")
        saved = load_checkpoint(start, task=task)
        load_weights(model, saved.state_dict, saved.path / "model.safetensors", "this run's settings")
        return
    info = distributed.from_environment()
    if info.is_main:
        save_checkpoint(start, task=task, model_config=model_config, state_dict=model.state_dict())
    distributed.barrier(info)


def train_members(model: nn.Module, members: int, config: TrainConfig,
                  make_spec: Callable[[nn.Module, int, int], TrainSpec]) -> list[TrainResult]:
    """Fine-tune a copy of `model` per member (seeds config.seed, +1, ...); their results in order.
    make_spec(model, seed, k) -> the TrainSpec of member k's fine-tuning (k from 0)."""
    results = []
    for k in range(members):
        out = config.out / MEMBERS / str(k + 1) if config.out is not None else None
        resume = bool(config.resume and out is not None
                      and resolve_checkpoint_dir(out / "last") is not None)
        member = dataclasses.replace(config, seed=config.seed + k, out=out, resume=resume,
                                     overwrite=True)  # a member never started leaves no run behind
        print(f"ensemble member {k + 1}/{members} (seed {member.seed})", flush=True)
        results.append(training.fit(make_spec(copy.deepcopy(model), member.seed, k), member))
    return results


def save_ensemble(out: Path | None, ensemble: nn.Module, task: str, model_config: dict,
                  extras: dict, metrics: dict) -> None:
    """The ensemble as the run's best/ checkpoint (model_config gains "ensemble": K)."""
    if out is None or not distributed.from_environment().is_main:
        return
    save_checkpoint(out / "best", task=task, model_config={**model_config,
                                                           "ensemble": len(ensemble.members)},
                    state_dict=ensemble.state_dict(), extras=extras, info={"metrics": metrics})
