"""The demo's experiments: each turns one claim about RNNs and LSTMs into a measurement.

``EXPERIMENTS`` maps a name to a function ``run(context, out_dir) -> ExperimentResult``. Run them
with :func:`run_experiments`, which writes metrics.json, the figures and report.html after each
experiment finishes, so an interrupted run keeps everything that was done.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from lstmkit.errors import UsageError
from lstmkit.experiments import adding_copy, cliff, gates, gradients
from lstmkit.experiments.common import ExperimentResult, RunContext, format_table
from lstmkit.experiments.report import write_metrics, write_report

# Demo order: Cliff first, because the gradient and gate experiments reuse its trained models.
EXPERIMENTS: dict[str, Callable[[RunContext, Path], ExperimentResult]] = {
    "cliff": cliff.run,
    "gradients": gradients.run,
    "gates": gates.run,
    "adding": adding_copy.run_adding,
    "copy": adding_copy.run_copy,
}
DESCRIPTIONS = {
    "cliff": "remember a pet's species across 0-200 tokens of distractors (RNN vs LSTM)",
    "gradients": "gradient norm reaching each earlier word, trained and untrained",
    "gates": "which LSTM units hold the species, and their forget/input gates over a story",
    "adding": "adding problem (Hochreiter & Schmidhuber 1997) at several lengths",
    "copy": "copy task (Arjovsky et al. 2016) at several lengths",
}


def check_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise UsageError(f"unknown experiment {unknown[0]!r}; choose from: {', '.join(EXPERIMENTS)}")
    return names


def validate_settings(names: list[str], context: RunContext) -> None:
    """Raise UsageError for impossible settings before any folder is made or model trained."""
    check_names(names)
    if {"cliff", "gradients", "gates"} & set(names):
        cliff.settings_for(context)
    if "adding" in names:
        adding_copy.adding_settings(context)
    if "copy" in names:
        adding_copy.copy_settings(context)


def run_experiments(names: list[str], context: RunContext, out_dir: Path) -> list[ExperimentResult]:
    """Run the named experiments in order; after each one, rewrite metrics.json and report.html."""
    check_names(names)
    run_info = {"seed": context.seed, "quick": context.quick, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                "machine": platform.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "status": "running", "experiments_requested": names}
    results: list[ExperimentResult] = []
    started = time.perf_counter()
    write_metrics(out_dir, run_info, results)
    write_report(out_dir, run_info, results, names)
    for position, name in enumerate(names):
        context.log(f"[{position + 1}/{len(names)}] {name}: {DESCRIPTIONS[name]}")
        result = EXPERIMENTS[name](context, out_dir)
        results.append(result)
        done = position + 1 == len(names)
        run_info["status"] = "complete" if done else f"partial: {position + 1} of {len(names)} done"
        run_info["seconds"] = round(time.perf_counter() - started, 1)
        write_metrics(out_dir, run_info, results)
        write_report(out_dir, run_info, results, names[position + 1:])
        context.log(f"\n{result.title} ({result.seconds:.0f} s)\n"
                    f"{format_table(result.headers, result.rows)}\n{result.explanation}\n")
    return results
