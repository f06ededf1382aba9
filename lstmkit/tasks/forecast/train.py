"""`lstmkit train forecast`: read, split chronologically, scale, train, and score the test part
beside the naive baselines.

A window of the past (target + optional feature columns, scaled with statistics of the training
part only) goes through the forecaster (model.py). The split is chronological: train | validation
| test; the test part is never used for fitting or model selection. Every metric is reported in
the series' own units next to the naive and seasonal-naive forecasts.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmkit.data.batching import tensor_batches
from lstmkit.data.series import (check_enough_rows, forecast_origins, make_windows, read_series_csv,
                                 split_points)
from lstmkit.errors import UsageError
from lstmkit.recipe import to_json
from lstmkit.tasks.forecast.config import NAME, TrainRecipe, check_recipe
from lstmkit.tasks.forecast.metrics import (all_metrics, mase_scale, naive_forecast,
                                            seasonal_naive_forecast)
from lstmkit.tasks.forecast.model import (build_model, check_scaled, fit_scaler, forecast_scaled,
                                          to_model_space, to_original_units)
from lstmkit.tasks.forecast.plot import plot_forecasts
from lstmkit.training import StepOutput, TrainSpec, atomic, fit, setup


def with_columns(recipe: TrainRecipe) -> TrainRecipe:
    """The recipe with the model's input columns filled in from --target and --features."""
    return dataclasses.replace(recipe, model=dataclasses.replace(recipe.model,
                                                                 columns=recipe.data.columns()))


def prepare(recipe: TrainRecipe):
    """Read, transform, split and scale; everything fitted on the training rows only."""
    data, model = recipe.data, recipe.model
    series = read_series_csv(data.csv, list(model.columns), missing=model.missing)
    raw = series.values  # (T, C) original units
    length = len(raw)
    valid_start, test_start = split_points(length, data.valid_fraction, data.test_fraction)
    check_enough_rows(length, model.window, model.horizon, valid_start, test_start, path=data.csv)
    if valid_start <= model.season:
        raise UsageError(f"--season {model.season} is longer than the training part ({valid_start} rows)")
    modelled = to_model_space(raw, model.log, str(data.csv))
    scaler = fit_scaler(modelled[:valid_start], model.columns, str(data.csv))
    scaled = scaler.transform(modelled)  # (T, C)
    check_scaled(scaled, model.columns, str(data.csv), series.line_numbers)
    parts = {"train": (0, valid_start), "valid": (valid_start, test_start), "test": (test_start, length)}
    origins = {name: forecast_origins(a, b, model.window, model.horizon) for name, (a, b) in parts.items()}
    return raw, scaled, scaler, origins, valid_start


def _step(model, batch, state):
    inputs, targets = batch
    loss = nn.functional.mse_loss(model(inputs), targets)  # in scaled units
    return StepOutput(loss, size=len(targets))


def main(recipe: TrainRecipe) -> int:
    recipe = with_columns(recipe)
    data, model_config, config = recipe.data, recipe.model, recipe.training
    check_recipe(recipe)
    setup(config)  # seeds before the model is built
    raw, scaled, scaler, origins, valid_start = prepare(recipe)
    windows = {name: tuple(map(torch.from_numpy, make_windows(scaled, 0, o, model_config.window,
                                                              model_config.horizon)))
               for name, o in origins.items()}  # name -> ((N, window, C), (N, horizon))
    model = build_model(model_config, config.backend)
    result = fit(TrainSpec(
        task=NAME, model=model, model_config=to_json(model_config), step=_step,
        train_batches=lambda epoch: tensor_batches(windows["train"], config.batch_size,
                                                   seed=config.seed, epoch=epoch, shard=True),
        valid_batches=tensor_batches(windows["valid"], 1024),
        extras={"scaler": scaler.to_dict()}), config)
    model = result.model.cpu()  # holds the best-on-validation weights

    horizon = model_config.horizon
    target = raw[:, 0]  # (T,) original units
    scale = mase_scale(target[:valid_start], model_config.season)
    test_origins = origins["test"]
    actual = target[test_origins[:, None] + np.arange(horizon)[None, :]]  # (N, H)
    forecasts = {
        "lstm": to_original_units(forecast_scaled(model, windows["test"][0].numpy()), scaler,
                                  model_config.log),
        "naive": naive_forecast(target, test_origins, horizon),
        "seasonal_naive": seasonal_naive_forecast(target, test_origins, horizon, model_config.season),
    }
    metrics = {name: all_metrics(actual, forecast, scale) for name, forecast in forecasts.items()}
    out = Path(config.out)
    summary = {"test": metrics, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "test_origins": len(test_origins), "rows": len(raw), "mase_scale": scale}
    atomic.write_text(out / "test_metrics.json", json.dumps(summary, indent=1))
    print(f"forecast {data.target} {horizon} steps ahead, {len(test_origins)} test origins, "
          f"best epoch {result.best_epoch}/{result.epochs_run}")
    print(f"{'model':<15} {'MAE':>10} {'RMSE':>10} {'MASE':>8} {'sMAPE%':>8}")
    for name, m in metrics.items():
        print(f"{name:<15} {m['mae']:>10.4g} {m['rmse']:>10.4g} {m['mase']:>8.3f} {m['smape']:>8.2f}")
    if data.plot:
        plot = plot_forecasts(out / "forecast.png", target, test_origins, forecasts["lstm"], horizon,
                              f"{Path(data.csv).name}: {data.target}, {horizon} steps ahead",
                              data.target)
        if plot:
            print(f"plot: {plot}")
    print(f"checkpoint: {result.best_dir}")
    return 0
