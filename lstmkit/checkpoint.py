"""Checkpoints: safetensors weights + a small JSON config (+ JSON extras such as a vocabulary).

A checkpoint is a directory::

    config.json            {"format": "lstmkit-checkpoint", "format_version": 1, "task": "sentiment",
                            "model": {...how to rebuild the model...}, "extras": ["vocab"], "info": {...}}
    model.safetensors      the model's state_dict
    vocab.json ...         one JSON file per extra (vocabulary, label names, normalisation, ...)
    trainer.safetensors    (only in a training run's `last` checkpoint) optimizer tensors, RNG states
    trainer.json           (idem) epoch, step, scheduler, early stopping, optimizer hyper-parameters

API::

    save_checkpoint(directory, task=..., model_config=..., state_dict=..., extras=..., info=...,
                    trainer_tensors=..., trainer_json=...)
    ckpt = load_checkpoint(directory, task="sentiment")      # refuses another task / format version
    ckpt.model_config, ckpt.state_dict, ckpt.extras["vocab"], ckpt.info, ckpt.trainer_json, ...

Why this layout:
- Loading never executes code from the file: only `safetensors.torch.load_file` and `json.load`
  (no pickle, no torch.load).
- Writing is atomic. The new checkpoint is written completely under `NAME.tmp`, the previous one is
  renamed to `NAME.old`, the new one renamed to `NAME`, then `NAME.old` is deleted. At every instant
  (kill -9 included) `NAME` or `NAME.old` holds a complete checkpoint, and `load_checkpoint` falls
  back to `NAME.old` when `NAME` is missing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lstmkit.errors import UsageError

FORMAT = "lstmkit-checkpoint"
FORMAT_VERSION = 1
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


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_checkpoint(directory: str | os.PathLike, *, task: str, model_config: dict,
                    state_dict: dict[str, torch.Tensor], extras: dict[str, Any] | None = None,
                    info: dict | None = None, trainer_tensors: dict[str, torch.Tensor] | None = None,
                    trainer_json: dict | None = None) -> Path:
    """Write a checkpoint directory atomically (see the module docstring); returns its path."""
    st = _safetensors()
    final = Path(directory)
    extras = extras or {}
    for name in extras:
        if not _EXTRA_NAME.match(name) or name in _RESERVED:
            raise ValueError(f"extra name {name!r}: use letters, digits, '_' or '-', not {_RESERVED}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    old = final.with_name(final.name + ".old")
    if tmp.exists():  # left over from a run killed while writing: never complete, safe to drop
        shutil.rmtree(tmp)
    tmp.mkdir()

    st.save_file(_plain_tensors(state_dict), str(tmp / "model.safetensors"))
    _fsync_file(tmp / "model.safetensors")
    for name, obj in extras.items():
        _write_json(tmp / f"{name}.json", obj)
    if trainer_tensors is not None:
        st.save_file(_plain_tensors(trainer_tensors), str(tmp / "trainer.safetensors"))
        _fsync_file(tmp / "trainer.safetensors")
        _write_json(tmp / "trainer.json", trainer_json or {})
    from lstmkit import __version__
    # config.json last: a directory with a config.json is complete.
    _write_json(tmp / "config.json", {
        "format": FORMAT, "format_version": FORMAT_VERSION, "task": task,
        "lstmkit_version": __version__, "model": model_config,
        "extras": sorted(extras), "info": info or {},
    })
    _fsync_dir(tmp)

    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)
    return final


def resolve_checkpoint_dir(directory: str | os.PathLike) -> Path | None:
    """The complete checkpoint at `directory`, or at `directory.old` if a save was interrupted."""
    path = Path(directory)
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / "config.json").is_file():
            return candidate
    return None


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
    if version != FORMAT_VERSION:
        raise UsageError(f"{file}: checkpoint format version {version!r}; this lstmkit reads "
                         f"version {FORMAT_VERSION} only")
    return config


def load_checkpoint(directory: str | os.PathLike, *, task: str | None,
                    map_location: str | torch.device = "cpu", trainer: bool = False) -> Checkpoint:
    """Read a checkpoint; `task` must match the saved task name (None accepts any).

    With trainer=True the optimizer/RNG state of a training run is read too (UsageError if absent).
    Raises UsageError (one clear line) for a missing, foreign, other-task or other-version checkpoint.
    """
    st = _safetensors()
    path = resolve_checkpoint_dir(directory)
    config = read_config(directory)
    saved_task = config.get("task")
    if task is not None and saved_task != task:
        raise UsageError(f"{path}: checkpoint of task {saved_task!r}, not {task!r}; "
                         f"use `lstmkit predict {saved_task}` or a {task} checkpoint")
    device = str(map_location)
    try:
        state_dict = st.load_file(str(path / "model.safetensors"), device=device)
    except (OSError, ValueError, RuntimeError) as error:
        raise UsageError(f"{path / 'model.safetensors'}: cannot read weights ({error})") from None
    extras = {}
    for name in config.get("extras", []):
        file = path / f"{name}.json"
        try:
            extras[name] = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UsageError(f"{file}: cannot read checkpoint extra ({error})") from None
    ckpt = Checkpoint(path=path, task=saved_task, model_config=config.get("model", {}),
                      state_dict=state_dict, extras=extras, info=config.get("info", {}))
    if trainer:
        if not (path / "trainer.json").is_file():
            raise UsageError(f"{path}: holds no training state (optimizer, epoch); "
                             f"resume from a run's `last` checkpoint")
        ckpt.trainer_tensors = st.load_file(str(path / "trainer.safetensors"), device="cpu")
        ckpt.trainer_json = json.loads((path / "trainer.json").read_text(encoding="utf-8"))
    return ckpt


# ---- optimizer / RNG state <-> (tensors, JSON), so that resuming needs no pickle ----------------

def optimizer_state_to_parts(optimizer: torch.optim.Optimizer, prefix: str = "optim."):
    """Split `optimizer.state_dict()` into safetensors-able tensors and a JSON-able rest."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{param_id}.{key}"] = value
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state_from_parts(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict,
                               prefix: str = "optim.") -> None:
    """Inverse of `optimizer_state_to_parts`, loading into `optimizer` in place."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if not name.startswith(prefix):
            continue
        param_id, key = name[len(prefix):].split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in meta.get("scalars", {}).items():
        state.setdefault(int(param_id), {}).update(values)
    current = optimizer.state_dict()["param_groups"]
    groups = []
    for saved, now in zip(meta["param_groups"], current):
        # JSON turned tuples (Adam's betas) into lists; give them back their type.
        groups.append({k: (tuple(v) if isinstance(now.get(k), tuple) else v) for k, v in saved.items()})
    if len(groups) != len(current):
        raise UsageError(f"optimizer has {len(current)} parameter groups, checkpoint {len(groups)}")
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state_to_parts(prefix: str = "rng.") -> tuple[dict, dict]:
    """torch (CPU + CUDA), numpy and Python `random` generator states as tensors + JSON."""
    import random

    import numpy as np

    tensors = {f"{prefix}torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{prefix}cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors[f"{prefix}numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
            "python": [py_version, list(py_state), py_gauss]}
    return tensors, meta


def rng_state_from_parts(tensors: dict, meta: dict, prefix: str = "rng.") -> None:
    import random

    import numpy as np

    torch.set_rng_state(tensors[f"{prefix}torch"].to(torch.uint8))
    cuda_keys = sorted((k for k in tensors if k.startswith(f"{prefix}cuda.")),
                       key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda_states = [tensors[k] for k in cuda_keys]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda_states])
    kind, pos, has_gauss, cached = meta["numpy"]
    keys = tensors[f"{prefix}numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
