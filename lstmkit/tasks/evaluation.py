"""`lstmkit evaluate --model DIR --test FILE`: the scores of a finished or interrupted run, as its
training report has them (metrics and baselines), for every task.

A training run writes its settings to DIR/recipe.json when it starts (`write_run_recipe`), so an
evaluation knows how the run read its data (format, encoding, columns, split) and which texts
its baseline was fitted on. The task is read from the checkpoint; each task's `evaluate_main`
does the scoring with the same functions its training uses for the final report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path

from lstmkit.errors import UsageError
from lstmkit.recipe import at_least, between, option, section, to_json
from lstmkit.training import atomic
from lstmkit.training.checkpoint import (read_config, read_json, resolve_checkpoint_dir,
                                        run_or_checkpoint_dir)
from lstmkit.training.config import backend_names

RECIPE_FILE = "recipe.json"


@dataclass
class EvaluateOptions:
    model: Path | None = option(None, "a training run folder (its best/ checkpoint; an interrupted "
                                "ensemble: its finished members) or a checkpoint folder",
                                required=True, metavar="DIR")
    test: Path | None = option(None, "the data to score, as the run's --test: labelled texts "
                               "(sentiment), a text (lm), a CSV series (forecast: its last "
                               "--test-fraction of rows), an .npz (seqmnist: x_test, y_test)",
                               required=True, metavar="FILE")
    train: Path | None = option(None, "sentiment: the training texts the baseline is fitted on",
                                metavar="FILE", default_text="the run's, from DIR/recipe.json")
    report: Path | None = option(None, "where the report (JSON) goes", metavar="FILE",
                                 default_text="DIR/evaluation.json")
    baseline: bool = option(True, "score the task's baselines beside the model")
    format: str | None = option(None, "sentiment: how --test holds the texts",
                                default_text="the run's")
    text_column: str | None = option(None, "sentiment: the text column", default_text="the run's")
    label_column: str | None = option(None, "sentiment: the label column", default_text="the run's")
    encoding: str | None = option(None, "text encoding of --test (and --train)",
                                  default_text="the run's")
    skip_bad: bool = option(False, "skip malformed lines of --test (and say how many)")
    test_fraction: float | None = option(None, "forecast: the share of the series' rows scored "
                                         "(its end)", check=between(0, 1, high_open=True),
                                         default_text="the run's")
    batch_size: int = option(256, "items scored at once", check=at_least(1))
    device: str = option("auto", "auto (CUDA when there is one), cpu, cuda or cuda:N")
    backend: str = option("auto", "lstmkit.LSTM engine", choices=backend_names)
    progress: bool = option(True, "progress bar")


@dataclass
class EvaluateRecipe:
    evaluate: EvaluateOptions = section(EvaluateOptions, "evaluation")


def model_task(directory: Path) -> str:
    """The task of the model at `directory` (a run folder or a checkpoint)."""
    checkpoint = run_or_checkpoint_dir(directory)
    if resolve_checkpoint_dir(checkpoint) is None and (Path(directory) / RECIPE_FILE).is_file():
        members = sorted(Path(directory).glob("members/*/best"))
        if members:  # an ensemble interrupted before its best/ was written
            checkpoint = members[0]
        else:
            raise UsageError(f"{directory}: the run has no checkpoint yet (it stopped before its "
                             f"first epoch ended); nothing to evaluate")
    return read_config(checkpoint)["task"]


def _absolute(settings):
    """The settings with every path made absolute, so the record holds wherever it is read from."""
    return replace(settings, **{f.name: getattr(settings, f.name).resolve() for f in fields(settings)
                                if isinstance(getattr(settings, f.name), Path)})


def run_recipe_files(recipe) -> dict[str, str]:
    """{"recipe.json": the run's settings, section by section}: TrainSpec.run_files."""
    sections = {f.name: to_json(_absolute(getattr(recipe, f.name))) for f in fields(recipe)
                if is_dataclass(getattr(recipe, f.name))}
    return {RECIPE_FILE: json.dumps(sections, indent=1) + "\n"}


def write_run_recipe(out: Path, recipe) -> None:
    """DIR/recipe.json now (runs whose folder the task prepares itself: ensembles)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, text in run_recipe_files(recipe).items():
        atomic.write_text(Path(out) / name, text)


def read_run_recipe(directory: Path) -> dict:
    """The settings a run was trained with ({} for a checkpoint folder or an older run)."""
    for folder in (Path(directory), Path(directory).parent):
        path = folder / RECIPE_FILE
        if path.is_file():
            settings = read_json(path, "the run's settings")
            if not isinstance(settings, dict):
                raise UsageError(f"{path}: cannot read the run's settings (not a JSON object)")
            return settings
    return {}


def report_path(options: EvaluateOptions) -> Path:
    """Where the evaluation report goes: --report, else beside the run's checkpoints."""
    if options.report is not None:
        return options.report
    model = Path(options.model)
    run = model.parent if model.name in ("best", "last") else model
    return run / "evaluation.json"


def write_report(options: EvaluateOptions, report: dict) -> Path:
    path = report_path(options)
    atomic.write_text(path, json.dumps(report, indent=1) + "\n")
    return path
