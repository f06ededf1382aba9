"""The one way to rebuild a model from its checkpoint, for every task.

Each task describes its model once (`ModelKind`): the task name written in checkpoints, the model
config dataclass saved as JSON, the function that builds an untrained model from it, and how a
format-1 checkpoint's config and extras read in today's names. `load_model` does the rest.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from lstmkit.deploy import ExportedModel, is_exported
from lstmkit.errors import UsageError
from lstmkit.recipe import from_json
from lstmkit.training.checkpoint import Checkpoint, load_checkpoint, run_or_checkpoint_dir


@dataclass(frozen=True)
class ModelKind:
    task: str                                        # the task name in checkpoints
    config: type                                     # the model config dataclass
    build: Callable[[Any, str], nn.Module]           # (config, backend) -> untrained model
    upgrade_v1: Callable[[dict, dict], tuple[dict, dict]]  # format 1 (config, extras) -> today's
    # what `lstmkit export` ships of a loaded model (lstmkit.deploy.ExportForm)
    export_form: Callable[["LoadedModel"], Any] | None = None
    # an exported file standing in for the model where the task predicts: (ExportedModel, config) -> model
    from_exported: Callable[[Any, Any], Any] | None = None


@dataclass
class LoadedModel:
    model: nn.Module              # the trained weights, in eval mode
    config: Any                   # the task's model config dataclass
    extras: dict                  # vocabulary, labels, scaler, ... as saved (today's format)
    checkpoint: Checkpoint | None    # None for an exported file


def load_model(directory: str | os.PathLike, kind: ModelKind, *, device: str | torch.device = "cpu",
               backend: str = "auto") -> LoadedModel:
    """The model saved at `directory` (a checkpoint, or a run folder: its best/), rebuilt and
    loaded; UsageError naming the file when the checkpoint and the task disagree. A file written
    by `lstmkit export` (.onnx, .pt2) loads too, as a stand-in that runs the exported graph."""
    if is_exported(directory):
        return _load_exported(directory, kind)
    checkpoint = load_checkpoint(run_or_checkpoint_dir(directory), task=kind.task)
    saved, extras = checkpoint.model_config, checkpoint.extras
    if checkpoint.format_version == 1:
        saved, extras = kind.upgrade_v1(saved, extras)
    where = checkpoint.path / "config.json"
    try:
        config = from_json(kind.config, saved)
    except TypeError as error:  # a missing setting
        raise UsageError(f"{where}: the model settings do not describe a {kind.task} model "
                         f"({error})") from None
    model = kind.build(config, backend)
    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise UsageError(f"{checkpoint.path / 'model.safetensors'}: the weights do not fit the "
                         f"settings in {where} ({first})") from None
    return LoadedModel(model.to(device).eval(), config, extras, checkpoint)


def _load_exported(path: str | os.PathLike, kind: ModelKind) -> LoadedModel:
    exported = ExportedModel(path)
    if exported.task != kind.task:
        raise UsageError(f"{path} holds a {exported.task or 'foreign'} model, not a {kind.task} model")
    if kind.from_exported is None:
        raise UsageError(f"{path}: a {kind.task} model has no command that runs it exported")
    try:
        config = from_json(kind.config, exported.model)
    except TypeError as error:
        raise UsageError(f"{path}: its model settings do not describe a {kind.task} model ({error})") from None
    return LoadedModel(kind.from_exported(exported, config), config, exported.extras, None)
