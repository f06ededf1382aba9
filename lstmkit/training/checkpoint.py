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
_KIND_NAMES = {str: "text", dict: "a JSON object", list: "a list"}


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

    def save_tensors(tensors: dict[str, torch.Tensor], file: Path) -> None:
        from safetensors import SafetensorError
        try:
            st.save_file(_plain_tensors(tensors), str(file))
        except SafetensorError as error:  # how safetensors reports a full disk
            raise OSError(str(error)) from None
        fsync_file(file)

    def fill(folder: Path) -> None:
        save_tensors(state_dict, folder / "model.safetensors")
        for name, obj in extras.items():
            _write_json(folder / f"{name}.json", obj)
        if trainer_tensors is not None:
            save_tensors(trainer_tensors, folder / "trainer.safetensors")
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


def read_json(file: Path, what: str) -> Any:
    """The JSON document in `file` (a part of a checkpoint or run folder, described by `what`);
    UsageError naming the file when it is missing or not JSON."""
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{file}: missing ({what}); the checkpoint is incomplete") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        reason = error.strerror if isinstance(error, OSError) else \
            "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise UsageError(f"{file}: cannot read {what} ({reason})") from None


def _read_tensors(file: Path, device: str, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; UsageError naming the file when it is missing or damaged
    (safetensors raises its own SafetensorError for a bad header or a short file)."""
    st = _safetensors()
    from safetensors import SafetensorError
    if not file.is_file():
        raise UsageError(f"{file}: missing ({what}); the checkpoint is incomplete")
    try:
        return st.load_file(str(file), device=device)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{file}: damaged, cannot read {what} ({reason[:200]})") from None


def _check_finite(tensors: dict[str, torch.Tensor], file: Path) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UsageError(f"{file}: tensor {name!r} holds NaN or infinite values; these weights "
                             f"cannot predict anything (a diverged run, or a damaged file)")


def read_config(directory: str | os.PathLike) -> dict:
    """config.json of a checkpoint, validated (format, version, the types of its parts); raises
    UsageError if unusable."""
    path = resolve_checkpoint_dir(directory)
    if path is None:
        raise UsageError(f"{directory}: no checkpoint here (expected {Path(directory) / 'config.json'})")
    file = path / "config.json"
    config = read_json(file, "the checkpoint config")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UsageError(f"{file}: not an lstmkit checkpoint (no \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise UsageError(f"{file}: checkpoint format version {json.dumps(version)[:20]}; this "
                         f"lstmkit reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    for key, kind, default in (("task", str, None), ("model", dict, {}), ("extras", list, []),
                               ("info", dict, {})):
        if not isinstance(config.get(key, default), kind):
            raise UsageError(f"{file}: {key!r} must be {_KIND_NAMES[kind]}, got "
                             f"{type(config.get(key)).__name__}")
    bad = [name for name in config.get("extras", [])
           if not isinstance(name, str) or not _EXTRA_NAME.match(name) or name in _RESERVED]
    if bad:
        raise UsageError(f"{file}: {str(bad[0])[:40]!r} is not an extra's name (letters, digits, "
                         f"'_' or '-')")
    return config


def load_checkpoint(directory: str | os.PathLike, *, task: str | None,
                    map_location: str | torch.device = "cpu", trainer: bool = False) -> Checkpoint:
    """Read a checkpoint and check what can be checked without knowing the model: every file
    present and readable, the config's parts of the right types, weights finite, and `task` the
    saved task name (None accepts any).

    With trainer=True the optimizer/RNG state of a training run is read too (UsageError if absent).
    Raises UsageError (one line naming the file) for a missing, damaged, foreign, other-task or
    other-version checkpoint.
    """
    config = read_config(directory)
    path = resolve_checkpoint_dir(directory)
    saved_task = config["task"]
    if task is not None and saved_task != task:
        raise UsageError(f"{path}: checkpoint of task {saved_task[:40]!r}, not {task!r}; "
                         f"give a {task} checkpoint")
    state_dict = _read_tensors(path / "model.safetensors", str(map_location), "the weights")
    _check_finite(state_dict, path / "model.safetensors")
    extras = {name: read_json(path / f"{name}.json", "a checkpoint extra")
              for name in config.get("extras", [])}
    ckpt = Checkpoint(path=path, task=saved_task, model_config=config.get("model", {}),
                      state_dict=state_dict, extras=extras, info=config.get("info", {}),
                      format_version=config["format_version"])
    if trainer:
        if not (path / "trainer.json").is_file():
            raise UsageError(f"{path}: holds no training state (optimizer, epoch); "
                             f"resume from a run's `last` checkpoint")
        ckpt.trainer_tensors = _read_tensors(path / "trainer.safetensors", "cpu", "the training state")
        _check_finite(ckpt.trainer_tensors, path / "trainer.safetensors")
        ckpt.trainer_json = read_json(path / "trainer.json", "the training state")
        if not isinstance(ckpt.trainer_json, dict):
            raise UsageError(f"{path / 'trainer.json'}: the training state must be a JSON object")
    return ckpt


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, tensor.shape)) + ")"


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], file: Path,
                 settings: str) -> None:
    """Load `state_dict` (read from `file`) into `model`, after `check_fits`."""
    check_fits(model, state_dict, file, settings)
    model.load_state_dict(state_dict)


def check_fits(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], file: Path,
               settings: str) -> None:
    """UsageError naming the first tensor of `state_dict` (read from `file`) that is missing,
    unexpected or not of the shape `model` (built from `settings`) has."""
    expected = model.state_dict()
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    if missing or unexpected:
        parts = ([f"lacks {', '.join(missing[:3])}"] if missing else []) + \
                ([f"has unexpected {', '.join(name[:40] for name in unexpected[:3])}"]
                 if unexpected else [])
        raise UsageError(f"{file}: the weights do not fit {settings}: it {' and '.join(parts)}")
    for name, tensor in expected.items():
        if state_dict[name].shape != tensor.shape:
            raise UsageError(f"{file}: tensor {name!r} has shape {_shape(state_dict[name])}, but "
                             f"{settings} give {_shape(tensor)}")
