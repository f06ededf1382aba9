"""Exported task models: one file that holds the graph and what a program needs to use it.

    lstmkit export --model runs/sentiment --format onnx --out sentiment.onnx
    lstmkit predict sentiment --model sentiment.onnx "what a great book"     # onnxruntime, no torch model

A task describes the computation it ships as an `ExportForm` (a module with example inputs and
their dynamic dimensions); `export` records it with torch.export, writes it as ONNX or as a
torch.export archive (.pt2), stores the task, its model settings and extras (vocabulary, labels,
scaler) inside the file, and checks that the file gives the eager model's outputs before it says
it is done. `ExportedModel` reads such a file back and runs it: onnxruntime for ONNX (the
optional extra ``lstmkit[onnx]``), torch for .pt2.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmkit.errors import UsageError

FORMATS = ("onnx", "pt2")
_KEY = "lstmkit"
_PT2_NAME = "lstmkit.json"
_ONNX_HINT = "pip install 'lstmkit[onnx]'"


@dataclass
class ExportForm:
    """What a task ships: ``module(*inputs)`` -> outputs, and which input dimensions may vary."""

    module: nn.Module
    inputs: tuple[torch.Tensor, ...]        # example inputs, with the traced sizes
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_shapes: tuple[dict, ...]        # per input: {dimension: torch.export.Dim}
    checks: tuple[tuple[torch.Tensor, ...], ...] = ()   # other inputs the written file must match on


def export(form: ExportForm, path: str | os.PathLike, fmt: str, metadata: dict) -> float:
    """Write ``form`` to ``path`` as ``fmt`` ("onnx" or "pt2") with ``metadata`` inside; returns the
    largest difference between the written file's outputs and the module's on every check input."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    form.module.eval()
    with _quiet_exporters():
        _write(form, path, fmt, metadata)
    exported = ExportedModel(path)
    worst = 0.0
    with torch.no_grad():
        for inputs in (form.inputs, *form.checks):
            want = _as_tuple(form.module(*inputs))
            for got, expected in zip(exported.run(*inputs), want):
                worst = max(worst, (got.double() - expected.double()).abs().max().item())
    return worst


def _write(form: ExportForm, path: Path, fmt: str, metadata: dict) -> None:
    program = torch.export.export(form.module, form.inputs, dynamic_shapes=form.dynamic_shapes)
    if fmt == "pt2":
        torch.export.save(program, path, extra_files={_PT2_NAME: json.dumps(metadata)})
    else:
        _require_onnx_exporter()
        onnx_program = torch.onnx.export(program, form.inputs, input_names=list(form.input_names),
                                         output_names=list(form.output_names), verbose=False)
        onnx_program.model.metadata_props[_KEY] = json.dumps(metadata)
        onnx_program.save(str(path))


@contextlib.contextmanager
def _quiet_exporters():
    """torch's exporters log what they skip (torchvision's operators, which no LSTM uses) and warn
    about their own deprecated internals: noise in a command's output, so it is held back here."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            yield
    finally:
        logger.setLevel(level)


class ExportedModel:
    """A file written by `export`: its ``task``, ``model`` settings (JSON) and ``extras``, and
    ``run(*inputs)`` -> output tensors, on onnxruntime (.onnx) or torch (.pt2)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"{self.path}: no such file")
        if self.path.suffix == ".onnx":
            self.format = "onnx"
            self._session = _onnx_session(self.path)
            meta = self._session.get_modelmeta().custom_metadata_map.get(_KEY)
            self._names = [i.name for i in self._session.get_inputs()]
        elif self.path.suffix == ".pt2":
            self.format = "pt2"
            extra = {_PT2_NAME: ""}
            try:
                self._program = torch.export.load(self.path, extra_files=extra)
            except (zipfile.BadZipFile, RuntimeError, KeyError, ValueError) as error:
                raise UsageError(f"{self.path}: not a torch.export archive ({error})") from None
            self._module = self._program.module()
            meta = extra[_PT2_NAME] or None
        else:
            raise UsageError(f"{self.path}: an exported model ends in .onnx or .pt2")
        if not meta:
            raise UsageError(f"{self.path}: not written by `lstmkit export` (no lstmkit metadata)")
        try:
            info = json.loads(meta)
        except json.JSONDecodeError as error:
            raise UsageError(f"{self.path}: its lstmkit metadata is damaged ({error})") from None
        self.task: str = info.get("task", "")
        self.model: dict = info.get("model", {})
        self.extras: dict = info.get("extras", {})

    def run(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.format == "pt2":
            with torch.no_grad():
                return _as_tuple(self._module(*inputs))
        arrays = {name: np.ascontiguousarray(t.detach().cpu().numpy()) for name, t in zip(self._names, inputs)}
        return tuple(torch.from_numpy(out) for out in self._session.run(None, arrays))

    def describe(self) -> str:
        return f"{self.path} ({self.format}, a {self.task} model)"


class StandIn:
    """An exported model where the prediction code expects the torch model: called with the same
    tensors, it returns what the module returned (one tensor, or a tuple). There is nothing to
    switch or move: ``eval()`` and ``to()`` leave it as it is."""

    def __init__(self, exported: ExportedModel) -> None:
        self.exported = exported

    def __call__(self, *inputs: torch.Tensor):
        outputs = self.exported.run(*inputs)
        return outputs[0] if len(outputs) == 1 else outputs

    def eval(self) -> "StandIn":
        return self

    def to(self, *args, **kwargs) -> "StandIn":
        return self


def is_exported(path: str | os.PathLike) -> bool:
    """Whether ``--model`` names an exported file rather than a run folder or checkpoint."""
    return Path(path).suffix in (".onnx", ".pt2") and Path(path).is_file()


def _as_tuple(outputs: Any) -> tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _require_onnx_exporter() -> None:
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError:
        raise UsageError(f"exporting to ONNX needs onnxscript: {_ONNX_HINT}") from None


def _onnx_session(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(f"running an ONNX model needs onnxruntime: {_ONNX_HINT}") from None
    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for a bad file
        raise UsageError(f"{path}: onnxruntime cannot read it ({str(error).splitlines()[0][:200]})") from None
