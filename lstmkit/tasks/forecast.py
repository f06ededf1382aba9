"""Forecasting of CSV time series: `lstmkit train forecast` and `lstmkit predict forecast`.

A window of the past (target + optional feature columns, scaled with statistics of the training
part only) goes through an LSTM; a linear head reads the last hidden state and emits all H future
steps at once (direct multi-step). The head predicts the change from the last observed target
value, so a series that drifts beyond the range seen in training (a trend) stays forecastable.

The split is chronological: train | validation | test, the test part is never used for fitting
or model selection. Every metric is reported next to the naive and seasonal-naive baselines.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmkit.data.series import (MISSING_POLICIES, StandardScaler, check_enough_rows, forecast_origins,
                                 make_windows, read_series_csv, split_points)
from lstmkit import train
from lstmkit.errors import UsageError
from lstmkit.nn.layers import LSTM
from lstmkit.train_config import add_training_args
from lstmkit.metrics_forecast import all_metrics, mase_scale, naive_forecast, seasonal_naive_forecast

NAME = "forecast"
BASELINES = ("last", "seasonal")
HELP = "forecast the next H steps of a CSV time series (univariate or with extra feature columns)"


class Forecaster(nn.Module):
    """(B, window, C) scaled inputs -> (B, horizon) scaled target forecasts.

    The head predicts a correction to a simple baseline read off the window: the last target
    value ("last"), or the last season of it ("seasonal", step h -> value at h - season). Learning
    the change rather than the level keeps a trending series forecastable beyond its training range.
    """

    def __init__(self, num_inputs: int, hidden_size: int, num_layers: int, horizon: int,
                 target_column: int = 0, dropout: float = 0.0, baseline: str = "last", season: int = 1):
        super().__init__()
        if baseline not in BASELINES:
            raise UsageError(f"--baseline {baseline!r} is not known; allowed: {', '.join(BASELINES)}")
        self.target_column, self.baseline, self.season, self.horizon = target_column, baseline, season, horizon
        self.lstm = LSTM(num_inputs, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, horizon)

    def base_forecast(self, inputs: torch.Tensor) -> torch.Tensor:
        target = inputs[:, :, self.target_column]  # (B, window)
        if self.baseline == "last":
            return target[:, -1:].expand(-1, self.horizon)  # (B, horizon)
        window = target.size(1)
        index = window - self.season + torch.arange(self.horizon, device=inputs.device) % self.season  # (horizon,)
        return target[:, index]  # (B, horizon)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(inputs)  # (B, window, hidden)
        return self.base_forecast(inputs) + self.head(outputs[:, -1])  # (B, horizon)


# ---- command line ------------------------------------------------------------------------------

def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", required=True, help="CSV file with a header row")
    parser.add_argument("--target", required=True, help="column to forecast")
    parser.add_argument("--features", default="", help="extra input columns, comma separated")
    parser.add_argument("--window", type=int, default=24, help="past steps the model sees")
    parser.add_argument("--horizon", type=int, default=12, help="future steps forecast at once")
    parser.add_argument("--season", type=int, default=1,
                        help="season length in steps (12 monthly, 24 hourly) for seasonal naive and MASE")
    parser.add_argument("--missing", choices=MISSING_POLICIES, default="refuse",
                        help="missing values: refuse (default), interpolate linearly, or drop the rows")
    parser.add_argument("--log", action="store_true",
                        help="model log(values) (positive series with multiplicative seasonality)")
    parser.add_argument("--valid-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--baseline", choices=BASELINES, default="last",
                        help="the model learns a correction to: the last value, or the last season (needs --season)")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--no-plot", action="store_true", help="skip the forecast-vs-actual plot")
    add_training_args(parser, out=Path("runs/forecast"), epochs=50, batch_size=32, lr=3e-3,
                      lr_schedule="cosine", clip=1.0)


def add_predict_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="run folder of `lstmkit train forecast` (uses its best/) or a checkpoint directory")
    parser.add_argument("--csv", required=True, help="series with the same columns; forecasts follow its end")
    parser.add_argument("--missing", choices=MISSING_POLICIES, default=None,
                        help="missing-value policy (default: the one used in training)")


def _columns(args) -> list[str]:
    features = [name.strip() for name in args.features.split(",") if name.strip()]
    return [args.target] + [name for name in features if name != args.target]


def _check_positive_ints(args, names):
    for name in names:
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")


def _to_model_space(values: np.ndarray, use_log: bool, path: str) -> np.ndarray:
    if not use_log:
        return values
    if (values <= 0).any():
        raise UsageError(f"{path}: --log needs every value > 0, found {values.min()}; drop --log")
    return np.log(values)


def _from_model_space(values: np.ndarray, use_log: bool) -> np.ndarray:
    return np.exp(values) if use_log else values


def _forecast_scaled(model: Forecaster, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            outputs.append(model(torch.from_numpy(inputs[start:start + batch_size])).numpy())
    return np.concatenate(outputs).astype(np.float64)  # (N, horizon)


# ---- training ----------------------------------------------------------------------------------

def _prepare(args):
    """Read, transform, split and scale; everything fitted on the training rows only."""
    _check_positive_ints(args, ["window", "horizon", "season", "hidden_size", "num_layers"])
    columns = _columns(args)
    series = read_series_csv(args.csv, columns, missing=args.missing)
    raw = series.values  # (T, C) original units
    length = len(raw)
    valid_start, test_start = split_points(length, args.valid_fraction, args.test_fraction)
    check_enough_rows(length, args.window, args.horizon, valid_start, test_start, path=args.csv)
    if valid_start <= args.season:
        raise UsageError(f"--season {args.season} is longer than the training part ({valid_start} rows)")
    if args.baseline == "seasonal" and (args.season < 2 or args.season > args.window):
        raise UsageError(f"--baseline seasonal needs 2 <= --season <= --window, got season {args.season}, "
                         f"window {args.window}")
    modelled = _to_model_space(raw, args.log, args.csv)
    scaler = StandardScaler.fit(modelled[:valid_start])
    scaled = scaler.transform(modelled)  # (T, C)
    parts = {"train": (0, valid_start), "valid": (valid_start, test_start), "test": (test_start, length)}
    origins = {name: forecast_origins(a, b, args.window, args.horizon) for name, (a, b) in parts.items()}
    return columns, raw, scaled, scaler, origins, valid_start


def _to_original_units(scaled_forecast: np.ndarray, scaler: StandardScaler, use_log: bool) -> np.ndarray:
    return _from_model_space(scaler.inverse_column(scaled_forecast, 0), use_log)


def _batches(inputs, targets, batch_size, generator=None):
    """(x (b, window, C), y (b, horizon)) mini-batches; shuffled when a generator is given."""
    order = torch.randperm(len(inputs), generator=generator) if generator is not None else torch.arange(len(inputs))
    return [(inputs[index], targets[index]) for index in order.split(batch_size)]


def _step(model, batch, state):
    inputs, targets = batch
    loss = nn.functional.mse_loss(model(inputs), targets)  # in scaled units
    return train.StepOutput(loss, size=len(targets))


def train_main(args) -> int:
    config = train.config_from_args(args)
    train.setup(config)  # seeds before the model is built
    columns, raw, scaled, scaler, origins, valid_start = _prepare(args)
    windows = {name: tuple(map(torch.from_numpy, make_windows(scaled, 0, o, args.window, args.horizon)))
               for name, o in origins.items()}  # name -> ((N, window, C), (N, horizon))
    model_config = {"columns": columns, "window": args.window, "horizon": args.horizon, "season": args.season,
                    "log": args.log, "missing": args.missing, "hidden_size": args.hidden_size,
                    "num_layers": args.num_layers, "dropout": args.dropout, "baseline": args.baseline}
    model = build_forecaster(model_config)
    result = train.fit(train.TrainSpec(
        task=NAME, model=model, model_config=model_config, step=_step,
        train_batches=lambda epoch: _batches(*windows["train"], config.batch_size,
                                             train.epoch_generator(config.seed, epoch)),
        valid_batches=_batches(*windows["valid"], 1024),
        extras={"scaler": scaler.to_dict()}), config)
    model = result.model.cpu()  # holds the best-on-validation weights

    target = raw[:, 0]  # (T,) original units
    scale = mase_scale(target[:valid_start], args.season)
    test_origins = origins["test"]
    actual = target[test_origins[:, None] + np.arange(args.horizon)[None, :]]  # (N, H)
    forecasts = {
        "lstm": _to_original_units(_forecast_scaled(model, windows["test"][0].numpy()), scaler, args.log),
        "naive": naive_forecast(target, test_origins, args.horizon),
        "seasonal_naive": seasonal_naive_forecast(target, test_origins, args.horizon, args.season),
    }
    metrics = {name: all_metrics(actual, forecast, scale) for name, forecast in forecasts.items()}
    out = Path(args.out)
    summary = {"test": metrics, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "test_origins": len(test_origins), "rows": len(raw), "mase_scale": scale}
    (out / "test_metrics.json").write_text(json.dumps(summary, indent=1))
    print(f"forecast {args.target} {args.horizon} steps ahead, {len(test_origins)} test origins, "
          f"best epoch {result.best_epoch}/{result.epochs_run}")
    print(f"{'model':<15} {'MAE':>10} {'RMSE':>10} {'MASE':>8} {'sMAPE%':>8}")
    for name, m in metrics.items():
        print(f"{name:<15} {m['mae']:>10.4g} {m['rmse']:>10.4g} {m['mase']:>8.3f} {m['smape']:>8.2f}")
    if not args.no_plot:
        plot = _plot(out / "forecast.png", target, test_origins, actual, forecasts["lstm"], args)
        if plot:
            print(f"plot: {plot}")
    print(f"checkpoint: {result.best_dir}")
    return 0


def _plot(path: Path, target, origins, actual, forecast, args):
    """Actual test series against forecasts from origins H steps apart (each covers its H steps)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is not installed (pip install 'lstmkit[tasks]')")
        return None
    first = max(0, len(origins) - 8 * args.horizon)  # a long test part: its last 8 horizons stay readable
    chosen = sorted(set(range(first, len(origins), args.horizon)) | {len(origins) - 1})  # mostly non-overlapping
    history = max(0, origins[first] - 3 * args.horizon)
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(np.arange(history, origins[-1] + args.horizon), target[history: origins[-1] + args.horizon],
              color="black", linewidth=1, label="actual")
    for k, i in enumerate(chosen):
        steps = origins[i] + np.arange(args.horizon)
        axes.plot(steps, forecast[i], color="tab:red", linewidth=1.2, label="LSTM forecast" if k == 0 else None)
    if first == 0:
        axes.axvline(origins[0], color="grey", linestyle=":", label="test part starts")
    axes.set_xlabel("time step")
    axes.set_ylabel(args.target)
    axes.set_title(f"{Path(args.csv).name}: {args.target}, {args.horizon} steps ahead")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# ---- prediction --------------------------------------------------------------------------------

def build_forecaster(config: dict) -> Forecaster:
    return Forecaster(len(config["columns"]), config["hidden_size"], config["num_layers"], config["horizon"], 0,
                      config["dropout"], config.get("baseline", "last"), config["season"])


def load_forecaster(directory):
    from lstmkit.checkpoint import load_checkpoint, run_or_checkpoint_dir

    checkpoint = load_checkpoint(run_or_checkpoint_dir(directory), task=NAME)
    config = checkpoint.model_config
    model = build_forecaster(config)
    model.load_state_dict(checkpoint.state_dict)
    return model, config, StandardScaler.from_dict(checkpoint.extras["scaler"])


def forecast_after_end(model, config, scaler, values: np.ndarray, path: str) -> np.ndarray:
    """The next H values (original units) after the last row of `values` (T, C)."""
    window = config["window"]
    if len(values) < window:
        raise UsageError(f"{path} has {len(values)} rows; the model needs the last {window} (--window)")
    scaled = scaler.transform(_to_model_space(values, config["log"], path))[-window:]  # (window, C)
    prediction = _forecast_scaled(model, scaled[None].astype(np.float32))[0]  # (H,)
    return _to_original_units(prediction, scaler, config["log"])


def predict_main(args) -> int:
    model, config, scaler = load_forecaster(args.model)
    missing = args.missing or config["missing"]
    series = read_series_csv(args.csv, config["columns"], missing=missing)
    forecast = forecast_after_end(model, config, scaler, series.values, args.csv)
    print(f"step,{config['columns'][0]}")
    for step, value in enumerate(forecast, start=1):
        print(f"{step},{value:.6g}")
    return 0
