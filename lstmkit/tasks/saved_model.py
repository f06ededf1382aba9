"""The one way to rebuild a model from its checkpoint, for every task, checked before anything runs.

Each task describes its model once (`ModelKind`): the task name written in checkpoints, the model
config dataclass saved as JSON, the function that builds an untrained model from it, how a
format-1 checkpoint's config and extras read in today's names, and what its extras must hold to
agree with the config (`check`). `load_model` does the rest, in this order, so that a damaged or
edited checkpoint is refused with one line naming its file before any prediction is printed:

1. every file present and readable, weights finite (lstmkit.training.checkpoint.load_checkpoint);
2. the config's settings of the right types and in range (lstmkit.recipe.from_json);
3. the extras agree with the config (vocabulary size, label count, columns, scaler);
4. every weight tensor present with the shape the config implies (checkpoint.load_weights).

A file written by `lstmkit export` (lstmkit.deploy) carries the same settings and extras, checked
by steps 2 and 3, and loads as a stand-in for the model that runs the exported graph.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from lstmkit.deploy import ExportedModel, is_exported
from lstmkit.errors import UsageError
from lstmkit.recipe import check_values, from_json
from lstmkit.training.checkpoint import (Checkpoint, load_checkpoint, load_weights,
                                         run_or_checkpoint_dir)


class Disagreement(Exception):
    """What a task's `check` raises: the checkpoint file at fault (e.g. "vocab.json") and why."""

    def __init__(self, file: str, message: str):
        super().__init__(message)
        self.file, self.message = file, message


def read_extra(extras: dict, name: str, parse: Callable[[Any], Any]) -> Any:
    """`extras[name]` read by `parse` (which raises ValueError saying what is wrong), or a
    Disagreement naming the extra's file."""
    if name not in extras:
        raise Disagreement("config.json", f"lists no {name!r} extra; the checkpoint is incomplete")
    try:
        return parse(extras[name])
    except ValueError as error:
        raise Disagreement(f"{name}.json", str(error)) from None


def agree(count: int, expected: int, file: str, what: str, setting: str) -> None:
    """A Disagreement when an extra holds `count` items where the config's `setting` says `expected`."""
    if count != expected:
        raise Disagreement(file, f"{count} {what}, but config.json says {setting} {expected}")


@dataclass(frozen=True)
class ModelKind:
    task: str                                        # the task name in checkpoints
    config: type                                     # the model config dataclass
    build: Callable[[Any, str], nn.Module]           # (config, backend) -> untrained model
    upgrade_v1: Callable[[dict, dict], tuple[dict, dict]]  # format 1 (config, extras) -> today's
    check: Callable[[Any, dict], None] | None = None  # (config, extras); raises Disagreement
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


def checked_settings(kind: ModelKind, saved: dict, extras: dict,
                     where: Callable[[str], str]) -> Any:
    """The task's model config dataclass from `saved`, of the right types, in range and agreeing
    with `extras`; UsageError naming the file at fault (`where(file name)` says where it is)."""
    try:
        config = from_json(kind.config, saved)
        check_values(config)
    except UsageError as error:
        raise UsageError(f"{where('config.json')}: {error}") from None
    try:
        if kind.check is not None:
            kind.check(config, extras)
    except Disagreement as problem:
        raise UsageError(f"{where(problem.file)}: {problem.message}") from None
    return config


def checked_config(checkpoint: Checkpoint, kind: ModelKind) -> tuple[Any, dict]:
    """The checkpoint's model config (the task's dataclass) and extras in today's format, checked
    against each other; UsageError naming the file at fault."""
    saved, extras = checkpoint.model_config, checkpoint.extras
    if checkpoint.format_version == 1:
        try:
            saved, extras = kind.upgrade_v1(saved, extras)
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            raise UsageError(f"{checkpoint.path / 'config.json'}: not a {kind.task} model of format 1 "
                             f"(no usable {str(error)[:40]})") from None
    return checked_settings(kind, saved, extras, lambda file: str(checkpoint.path / file)), extras


def build_checked(checkpoint: Checkpoint, kind: ModelKind, config: Any, backend: str) -> nn.Module:
    """The model `config` describes, holding the checkpoint's weights."""
    where = checkpoint.path / "config.json"
    try:
        model = kind.build(config, backend)
    except (ValueError, TypeError) as error:  # settings that each pass but not together
        raise UsageError(f"{where}: {str(error)[:200]}") from None
    load_weights(model, checkpoint.state_dict, checkpoint.path / "model.safetensors",
                 f"the settings in {where}")
    return model


def load_model(directory: str | os.PathLike, kind: ModelKind, *, device: str | torch.device = "cpu",
               backend: str = "auto") -> LoadedModel:
    """The model saved at `directory` (a checkpoint, or a run folder: its best/), rebuilt, checked
    (module docstring) and loaded; UsageError naming the file at fault. A file written by
    `lstmkit export` (.onnx, .pt2) loads too, as a stand-in that runs the exported graph, its
    settings and extras checked alike."""
    if is_exported(directory):
        return _load_exported(directory, kind)
    checkpoint = load_checkpoint(run_or_checkpoint_dir(directory), task=kind.task)
    config, extras = checked_config(checkpoint, kind)
    model = build_checked(checkpoint, kind, config, backend)
    return LoadedModel(model.to(device).eval(), config, extras, checkpoint)


def _load_exported(path: str | os.PathLike, kind: ModelKind) -> LoadedModel:
    exported = ExportedModel(path)
    if exported.task != kind.task:
        raise UsageError(f"{path} holds a {exported.task or 'foreign'} model, not a {kind.task} model")
    if kind.from_exported is None:
        raise UsageError(f"{path}: a {kind.task} model has no command that runs it exported")
    if not isinstance(exported.model, dict) or not isinstance(exported.extras, dict):
        raise UsageError(f"{path}: its lstmkit metadata is damaged (settings and extras are not "
                         f"JSON objects)")
    config = checked_settings(kind, exported.model, exported.extras,
                              lambda file: f"{path} (its {file.removesuffix('.json')})")
    return LoadedModel(kind.from_exported(exported, config), config, exported.extras, None)
