"""Everything --resume restores, saved with a run's `last` checkpoint without pickle: the optimizer
and RNG states split into tensors (safetensors) and a JSON rest, the schedule and the loop's own
counters (`RunState`)."""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lstmkit.errors import UsageError
from lstmkit.training import checkpoint as ckpt
from lstmkit.training.schedule import load_old_state


@dataclass
class RunState:
    """The loop's counters: where the run stands and what it has seen."""
    epochs_done: int = 0
    step: int = 0
    best_value: float | None = None
    best_epoch: int = 0
    best_metrics: dict = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> "RunState":
        """The counters as saved; ValueError when one is of the wrong kind (a damaged file)."""
        run = cls(**data)
        counts = (run.epochs_done, run.step, run.best_epoch, run.bad_epochs)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts) or \
                not isinstance(run.history, list) or not isinstance(run.best_metrics, dict) or \
                not (run.best_value is None or isinstance(run.best_value, (int, float))):
            raise ValueError("the run's counters are not counts")
        return run


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
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for param_id, values in state.items():  # load_state_dict itself would take any shape
        for key, value in values.items():
            if not 0 <= param_id < len(params) or (torch.is_tensor(value) and value.dim() and
                                                   value.shape != params[param_id].shape):
                raise UsageError(f"optimizer state {param_id}.{key} does not fit the model's "
                                 f"parameters")
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state_to_parts(prefix: str = "rng.") -> tuple[dict, dict]:
    """torch (CPU + CUDA), numpy and Python `random` generator states as tensors + JSON."""
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


# The training settings that shape every step after a resume: changing one would not continue the
# run but start another from its weights. Others (epochs, patience, device, progress, ...) may change.
CONTINUATION = ("lr", "batch_size", "optimizer", "weight_decay", "clip", "lr_schedule", "lr_decay",
                "lr_step", "min_lr", "warmup_steps", "seed", "max_batches")
TASK_PREFIX = "task."  # trainer tensors the task keeps (TrainSpec.task_state)


def _continuation(config) -> dict:
    return json.loads(json.dumps({name: getattr(config, name) for name in CONTINUATION
                                  if hasattr(config, name)}))


def save_last(out: Path, spec, config, model, optimizer, schedule, scaler, run: RunState,
              info: dict) -> None:
    """OUT/last: the weights and everything --resume needs to continue exactly."""
    optim_tensors, optim_meta = optimizer_state_to_parts(optimizer)
    rng_tensors, rng_meta = rng_state_to_parts()
    task_tensors = {TASK_PREFIX + name: tensor for name, tensor in
                    (spec.task_state() if spec.task_state is not None else {}).items()}
    ckpt.save_checkpoint(
        out / "last", task=spec.task, model_config=spec.model_config,
        state_dict=model.state_dict(), extras=spec.extras, info=info,
        trainer_tensors={**optim_tensors, **rng_tensors, **task_tensors},
        trainer_json={"optimizer": optim_meta, "rng": rng_meta, "schedule": schedule.state_dict(),
                      "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                      "run": asdict(run), "settings": _continuation(config)})


def _differences(saved: dict, wanted: dict) -> str:
    names = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    return ", ".join(f"{name} {json.dumps(saved.get(name))[:30]} there, "
                     f"{json.dumps(wanted.get(name))[:30]} here" for name in names[:4])


def _check_same_run(last: ckpt.Checkpoint, spec, config) -> None:
    """Refuse to resume with model or training settings other than the run's own."""
    saved, wanted = last.model_config, json.loads(json.dumps(spec.model_config))
    if last.format_version == ckpt.FORMAT_VERSION and saved != wanted:
        raise UsageError(f"--resume: {last.path} was trained with other model settings "
                         f"({_differences(saved, wanted)}); use the same flags or --overwrite")
    saved = last.trainer_json.get("settings")  # absent in runs saved before it was recorded
    wanted = _continuation(config)
    if isinstance(saved, dict) and saved != wanted:
        raise UsageError(f"--resume: {last.path} was trained with other training settings "
                         f"({_differences(saved, wanted)}); use the same flags or --overwrite")


def restore(out: Path, spec, config, model, optimizer, schedule, scaler,
            device: torch.device) -> RunState:
    """Load OUT/last into the model, optimizer, schedule, scaler, RNGs and the task's own state;
    the run's counters. UsageError naming the file when it does not fit this run."""
    last = ckpt.load_checkpoint(out / "last", task=spec.task, map_location=device, trainer=True)
    _check_same_run(last, spec, config)
    ckpt.load_weights(model, last.state_dict, last.path / "model.safetensors",
                      "this run's settings")
    meta, tensors = last.trainer_json, last.trainer_tensors
    try:
        optimizer_state_from_parts(optimizer, {k: v.to(device) for k, v in tensors.items()},
                                   meta["optimizer"])
        if "lr_lambdas" in meta["schedule"]:
            schedule.load_state_dict(meta["schedule"])
        else:
            load_old_state(schedule, meta["schedule"])
        if meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        rng_state_from_parts(tensors, meta["rng"])
        run = RunState.from_json(meta["run"])
        if spec.load_task_state is not None:
            spec.load_task_state({name[len(TASK_PREFIX):]: tensor for name, tensor in tensors.items()
                                  if name.startswith(TASK_PREFIX)})
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
        raise UsageError(f"{last.path}: trainer.json and trainer.safetensors do not hold a usable "
                         f"training state for this run ({type(error).__name__}: "
                         f"{str(error)[:120]})") from None
    return run
