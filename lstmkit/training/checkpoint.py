"""Checkpoints: safetensors weights + a small JSON config (+ JSON extras such as a vocabulary),
read and checked in this one place.

A checkpoint is a directory::

    config.json            {"format": "lstmkit-checkpoint", "format_version": 2, "task": "sentiment",
                            "model": {...the task's model config...}, "extras": ["vocab"], "info": {...}}
    model.safetensors      the model's state_dict
    vocab.json ...         one JSON file per extra (vocabulary, label names, normalisation, ...)
    trainer.safetensors    (only in a training run's `last` checkpoint) optimizer tensors, RNG states
    trainer.json           (idem) epoch, step, schedule, early stopping, optimizer hyper-parameters

Format versions: 2 saves each task's model config as its dataclass (lstmkit.tasks.saved_model
rebuilds the model from it); 1, written by the first release, saved the same settings under older
names. Both are read; the task turns a version-1 config into its dataclass.

Why this layout:
- Loading never executes code from the file: only `safetensors.torch.load_file` and `json`
  (no pickle, no torch.load).
- Writing is atomic (lstmkit.training.atomic.replace_dir, config.json written last): at every
  instant, kill -9 included, NAME or NAME.old holds a complete checkpoint, and loading falls back
  to NAME.old when NAME is missing.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lstmkit.errors import UsageError
from lstmkit.training.atomic import complete_dir, fsync_file, replace_dir

FORMAT = "lstmkit-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_EXTRA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
_RESERVED = {"config", "model", "trainer"}


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns; tensors are on `map_location` (CPU by default)."""

    path: Path
    task: str
    model_config: dict
    state_dict: dict[str, torch.Tensor]
    extras: dict[str, Any] = field(default_factory=dict)
    info: dict = field(default_factory=dict)                  # epoch, metrics, ... (free form)
    trainer_tensors: dict[str, torch.Tensor] | None = None    # only in a training run's `last`
    trainer_json: dict | None = None
    format_version: int = FORMAT_VERSION


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise UsageError("checkpoints need the 'safetensors' package: pip install 'lstmkit[tasks]'") \
            from error
    return st


def _plain_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage (tied weights, views): store copies.
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False, allow_nan=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(directory: str | os.PathLike, *, task: str, model_config: dict,
                    state_dict: dict[str, torch.Tensor], extras: dict[str, Any] | None = None,
                    info: dict | None = None, trainer_tensors: dict[str, torch.Tensor] | None = None,
                    trainer_json: dict | None = None) -> Path:
    """Write a checkpoint directory atomically (see the module docstring); returns its path."""
    st = _safetensors()
    extras = extras or {}
    for name in extras:
        if not _EXTRA_NAME.match(name) or name in _RESERVED:
            raise ValueError(f"extra name {name!r}: use letters, digits, '_' or '-', not {_RESERVED}")

    def fill(folder: Path) -> None:
        st.save_file(_plain_tensors(state_dict), str(folder / "model.safetensors"))
        fsync_file(folder / "model.safetensors")
        for name, obj in extras.items():
            _write_json(folder / f"{name}.json", obj)
        if trainer_tensors is not None:
            st.save_file(_plain_tensors(trainer_tensors), str(folder / "trainer.safetensors"))
            fsync_file(folder / "trainer.safetensors")
            _write_json(folder / "trainer.json", trainer_json or {})
        from lstmkit import __version__
        # config.json last: a directory with a config.json is complete.
        _write_json(folder / "config.json", {
            "format": FORMAT, "format_version": FORMAT_VERSION, "task": task,
            "lstmkit_version": __version__, "model": model_config,
            "extras": sorted(extras), "info": info or {},
        })

    return replace_dir(directory, fill)


def resolve_checkpoint_dir(directory: str | os.PathLike) -> Path | None:
    """The complete checkpoint at `directory`, or at `directory.old` if a save was interrupted."""
    return complete_dir(directory, "config.json")


def run_or_checkpoint_dir(directory: str | os.PathLike) -> Path:
    """What a user means by ``--model DIR``: DIR when it is a checkpoint, else its run's ``best/``
    (when there is one), else DIR itself, so that loading it names DIR in its message."""
    path = Path(directory)
    if resolve_checkpoint_dir(path) is None and resolve_checkpoint_dir(path / "best") is not None:
        return path / "best"
    return path


def read_config(directory: str | os.PathLike) -> dict:
    """config.json of a checkpoint, validated (format, version); raises UsageError if unusable."""
    path = resolve_checkpoint_dir(directory)
    if path is None:
        raise UsageError(f"{directory}: no checkpoint here (expected {Path(directory) / 'config.json'})")
    file = path / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{file}: not a readable lstmkit checkpoint config ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UsageError(f"{file}: not an lstmkit checkpoint (no \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if version not in READABLE_VERSIONS:
        raise UsageError(f"{file}: checkpoint format version {version!r}; this lstmkit reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    return config


def _read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{file}: cannot read {what} ({error})") from None


def load_checkpoint(directory: str | os.PathLike, *, task: str | None,
                    map_location: str | torch.device = "cpu", trainer: bool = False) -> Checkpoint:
    """Read a checkpoint; `task` must match the saved task name (None accepts any).

    With trainer=True the optimizer/RNG state of a training run is read too (UsageError if absent).
    Raises UsageError (one clear line) for a missing, foreign, other-task or other-version checkpoint.
    """
    st = _safetensors()
    config = read_config(directory)
    path = resolve_checkpoint_dir(directory)
    saved_task = config.get("task")
    if task is not None and saved_task != task:
        raise UsageError(f"{path}: checkpoint of task {saved_task!r}, not {task!r}; "
                         f"use `lstmkit predict {saved_task}` or a {task} checkpoint")
    try:
        state_dict = st.load_file(str(path / "model.safetensors"), device=str(map_location))
    except (OSError, ValueError, RuntimeError) as error:
        raise UsageError(f"{path / 'model.safetensors'}: cannot read weights ({error})") from None
    extras = {name: _read_json(path / f"{name}.json", "checkpoint extra")
              for name in config.get("extras", [])}
    ckpt = Checkpoint(path=path, task=saved_task, model_config=config.get("model", {}),
                      state_dict=state_dict, extras=extras, info=config.get("info", {}),
                      format_version=config["format_version"])
    if trainer:
        if not (path / "trainer.json").is_file():
            raise UsageError(f"{path}: holds no training state (optimizer, epoch); "
                             f"resume from a run's `last` checkpoint")
        ckpt.trainer_tensors = st.load_file(str(path / "trainer.safetensors"), device="cpu")
        ckpt.trainer_json = _read_json(path / "trainer.json", "training state")
    return ckpt
