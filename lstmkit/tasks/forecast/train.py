"""`lstmkit train forecast`: read, split chronologically, scale, train, and score the test part
beside the naive baselines.

A window of the past (target + optional feature columns, scaled with statistics of the training
part only) goes through the forecaster (model.py). The split is chronological: train | validation
| test, by fractions of the rows or by the Informer protocol's 12 | 4 | 4 months; the test part is
never used for fitting or model selection. Values filled in by --missing interpolate are reported
and never scored: an origin whose targets include one is left out of validation and test. Every
metric is reported in the series' own units next to the naive and seasonal-naive forecasts, and
as MSE / MAE of the standardised series (z-scored with the training part's statistics: the
published tables' units).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmkit.data.batching import tensor_batches
from lstmkit.data.series import (Series, StandardScaler, check_enough_rows, forecast_origins,
                                 make_windows, read_series_csv, split_points)
from lstmkit.errors import UsageError
from lstmkit.recipe import to_json
from lstmkit.tasks.evaluation import run_recipe_files
from lstmkit.tasks.forecast.config import NAME, ForecastData, ForecastModel, TrainRecipe, check_recipe
from lstmkit.tasks.forecast.metrics import (all_metrics, mase_scale, naive_forecast,
                                            seasonal_naive_forecast)
from lstmkit.tasks.forecast.model import (build_model, check_scaled, fit_scaler, forecast_scaled,
                                          to_model_space, to_original_units)
from lstmkit.tasks.forecast.plot import plot_forecasts
from lstmkit.training import StepOutput, TrainSpec, atomic, fit, setup

INFORMER_MONTHS = (12, 4, 4)  # train, validation, test; a month is 30 days (Zhou et al. 2021)


@dataclass
class Prepared:
    """A series read, split and scaled; everything fitted on the training rows only."""
    series: Series
    raw: np.ndarray              # (T, C) original units
    scaled: np.ndarray           # (T, C) the model's inputs
    scaler: StandardScaler
    origins: dict                # part -> forecast origins (N,) whose targets lie in the part
    valid_start: int
    test_start: int
    skipped: dict                # part -> origins left out: a target was filled in (--missing)


def with_columns(recipe: TrainRecipe) -> TrainRecipe:
    """The recipe with the model's input columns filled in from --target and --features."""
    return dataclasses.replace(recipe, model=dataclasses.replace(recipe.model,
                                                                 columns=recipe.data.columns()))


def split_rows(data: ForecastData, series: Series) -> tuple[int, int, int]:
    """(validation start, test start, end) rows of the split --split asks for."""
    length = len(series.values)
    if data.split == "fractions":
        return (*split_points(length, data.valid_fraction, data.test_fraction), length)
    if series.stamps is None:
        raise UsageError(f"{data.csv}: --split informer counts months, but the file has no date "
                         f"column; use --split fractions")
    month = round(30 * series.stamps.rows_per_day())
    valid_start, test_start, end = np.cumsum([m * month for m in INFORMER_MONTHS]).tolist()
    if end > length or month < 1:
        raise UsageError(f"{data.csv} has {length} rows; --split informer needs 20 months "
                         f"({end} rows of {month} a month)")
    return valid_start, test_start, end


def prepare(recipe: TrainRecipe, scaler: StandardScaler | None = None) -> Prepared:
    """Read, transform, split and scale (with `scaler`, a trained model's, else one fitted on the
    training rows)."""
    data, model = recipe.data, recipe.model
    series = read_series_csv(data.csv, list(model.columns), missing=model.missing,
                             encoding=data.encoding)
    valid_start, test_start, end = split_rows(data, series)
    raw = series.values[:end]  # (T, C) original units
    check_enough_rows(end, model.window, model.horizon, valid_start, test_start, path=data.csv)
    if valid_start <= model.season:
        raise UsageError(f"--season {model.season} is longer than the training part ({valid_start} rows)")
    modelled = to_model_space(raw, model.log, str(data.csv))
    scaler = scaler or fit_scaler(modelled[:valid_start], model.columns, str(data.csv))
    scaled = scaler.transform(modelled)  # (T, C)
    check_scaled(scaled, model.columns, str(data.csv), series.line_numbers)
    parts = {"train": (0, valid_start), "valid": (valid_start, test_start), "test": (test_start, end)}
    origins = {name: forecast_origins(a, b, model.window, model.horizon) for name, (a, b) in parts.items()}
    skipped = {}
    if series.imputed is not None:
        for name in ("valid", "test"):  # filled-in values are never scored as targets
            filled = series.imputed[origins[name][:, None] + np.arange(model.horizon), 0].any(axis=1)
            origins[name], skipped[name] = origins[name][~filled], int(filled.sum())
            if len(origins[name]) == 0:
                raise UsageError(f"{data.csv}: every {name} forecast has a filled-in target "
                                 f"(--missing interpolate); use a series with fewer gaps")
    return Prepared(series, raw, scaled, scaler, origins, valid_start,
                    test_start, skipped)


def _step(model, batch, state):
    inputs, targets = batch
    loss = nn.functional.mse_loss(model(inputs), targets)  # in scaled units
    return StepOutput(loss, size=len(targets))


def windows(prepared: Prepared, config: ForecastModel, part: str):
    """((N, window, C), (N, horizon)) tensors of one part."""
    return tuple(map(torch.from_numpy, make_windows(prepared.scaled, 0, prepared.origins[part],
                                                    config.window, config.horizon)))


def score_test(model, prepared: Prepared, config: ForecastModel) -> tuple[dict, np.ndarray]:
    """(summary of the test scores of the model and the naive forecasts, the model's forecasts)."""
    horizon, target = config.horizon, prepared.raw[:, 0]  # (T,) original units
    scale = mase_scale(target[:prepared.valid_start], config.season)
    origins = prepared.origins["test"]
    actual = target[origins[:, None] + np.arange(horizon)[None, :]]  # (N, H)
    forecasts = {
        "lstm": to_original_units(forecast_scaled(model, windows(prepared, config, "test")[0].numpy()),
                                  prepared.scaler, config.log),
        "naive": naive_forecast(target, origins, horizon),
        "seasonal_naive": seasonal_naive_forecast(target, origins, horizon, config.season),
    }
    train_part = target[:prepared.valid_start]
    mean, std = train_part.mean(), train_part.std() or 1.0
    metrics = {}
    for name, forecast in forecasts.items():
        z_error = (forecast - actual) / std  # the standardised series' error (mean cancels)
        metrics[name] = {**all_metrics(actual, forecast, scale),
                         "z_mse": float(np.mean(z_error ** 2)), "z_mae": float(np.mean(np.abs(z_error)))}
    summary = {"test": metrics, "test_origins": len(origins), "rows": len(prepared.raw),
               "mase_scale": scale, "z_mean": float(mean), "z_std": float(std),
               "imputed": prepared.series.imputed_summary(),
               "skipped_origins": prepared.skipped}
    return summary, forecasts["lstm"]


def print_scores(summary: dict, target: str, horizon: int) -> None:
    skipped = summary["skipped_origins"].get("test", 0)
    print(f"forecast {target} {horizon} steps ahead, {summary['test_origins']} test origins"
          + (f" ({skipped} left out: a target was filled in)" if skipped else ""))
    print(f"{'model':<15} {'MAE':>10} {'RMSE':>10} {'MASE':>8} {'sMAPE%':>8} {'z-MSE':>8} {'z-MAE':>8}")
    for name, m in summary["test"].items():
        print(f"{name:<15} {m['mae']:>10.4g} {m['rmse']:>10.4g} {m['mase']:>8.3f} {m['smape']:>8.2f} "
              f"{m['z_mse']:>8.4f} {m['z_mae']:>8.4f}")


def _say_imputed(series: Series) -> None:
    filled = series.imputed_summary()
    if filled["count"]:
        columns = ", ".join(f"{name} {n}" for name, n in filled["by_column"].items())
        print(f"{series.path}: filled {filled['count']} missing value(s) by linear interpolation "
              f"({columns}; first at line(s) {', '.join(map(str, filled['first_lines']))}); they "
              f"are never scored as targets", file=sys.stderr)


def main(recipe: TrainRecipe) -> int:
    recipe = with_columns(recipe)
    data, model_config, config = recipe.data, recipe.model, recipe.training
    check_recipe(recipe)
    setup(config)  # seeds before the model is built
    prepared = prepare(recipe)
    _say_imputed(prepared.series)
    parts = {name: windows(prepared, model_config, name) for name in prepared.origins}
    model = build_model(model_config, config.backend)
    result = fit(TrainSpec(
        task=NAME, model=model, model_config=to_json(model_config), step=_step,
        train_batches=lambda epoch: tensor_batches(parts["train"], config.batch_size,
                                                   seed=config.seed, epoch=epoch, shard=True),
        valid_batches=tensor_batches(parts["valid"], 1024),
        extras={"scaler": prepared.scaler.to_dict()}, final_items=len(prepared.origins["test"]),
        run_files=run_recipe_files(recipe)), config)
    model = result.model.cpu()  # holds the best-on-validation weights
    summary, forecast = score_test(model, prepared, model_config)
    summary.update(best_epoch=result.best_epoch, epochs_run=result.epochs_run,
                   stopped_early=result.stopped_early, stopped_by_budget=result.stopped_by_budget)
    out = Path(config.out)
    atomic.write_text(out / "test_metrics.json", json.dumps(summary, indent=1))
    print_scores(summary, data.target, model_config.horizon)
    print(f"best epoch {result.best_epoch}/{result.epochs_run}"
          + (" (early stopping)" if result.stopped_early else ""))
    if data.plot:
        plot = plot_forecasts(out / "forecast.png", prepared.raw[:, 0], prepared.origins["test"],
                              forecast, model_config.horizon,
                              f"{Path(data.csv).name}: {data.target}, {model_config.horizon} steps ahead",
                              data.target)
        if plot:
            print(f"plot: {plot}")
    print(f"checkpoint: {result.best_dir}")
    return 0
