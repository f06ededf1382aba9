"""The forecaster: a window of the past through an LSTM, all H future steps at once (direct
multi-step), as a correction to a simple baseline read off the window."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lstmkit.errors import UsageError
from lstmkit.nn.layers import LSTM
from lstmkit.data.series import StandardScaler
from lstmkit.tasks.forecast.config import BASELINES, NAME, ForecastModel, check_together, upgrade_v1
from lstmkit.tasks.forecast.export import export_form, from_exported
from lstmkit.tasks.saved_model import Disagreement, ModelKind, read_extra


class Forecaster(nn.Module):
    """(B, window, C) scaled inputs -> (B, horizon) scaled target forecasts.

    The head predicts a correction to a simple baseline read off the window: the last target
    value ("last"), or the last season of it ("seasonal", step h -> value at h - season). Learning
    the change rather than the level keeps a trending series forecastable beyond its training range.
    """

    def __init__(self, num_inputs: int, hidden_size: int, num_layers: int, horizon: int,
                 target_column: int = 0, dropout: float = 0.0, baseline: str = "last",
                 season: int = 1, backend: str = "auto"):
        super().__init__()
        if baseline not in BASELINES:
            raise UsageError(f"--baseline {baseline!r} is not known; allowed: {', '.join(BASELINES)}")
        self.target_column, self.baseline, self.season = target_column, baseline, season
        self.horizon = horizon
        self.lstm = LSTM(num_inputs, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0, backend=backend)
        self.head = nn.Linear(hidden_size, horizon)

    def base_forecast(self, inputs: torch.Tensor) -> torch.Tensor:
        target = inputs[:, :, self.target_column]  # (B, window)
        if self.baseline == "last":
            return target[:, -1:].expand(-1, self.horizon)  # (B, horizon)
        window = target.size(1)
        steps = torch.arange(self.horizon, device=inputs.device)  # (horizon,)
        return target[:, window - self.season + steps % self.season]  # (B, horizon)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(inputs)  # (B, window, hidden)
        return self.base_forecast(inputs) + self.head(outputs[:, -1])  # (B, horizon)


def build_model(config: ForecastModel, backend: str = "auto") -> Forecaster:
    """An untrained forecaster as `config` describes it, running on engine `backend`."""
    return Forecaster(len(config.columns), config.hidden_size, config.num_layers, config.horizon, 0,
                      config.dropout, config.baseline, config.season, backend)


def check_saved(config: ForecastModel, extras: dict) -> None:
    """The columns and the scaler a checkpoint holds agree."""
    columns = config.columns
    if not columns or len(set(columns)) != len(columns) or not all(c.strip() for c in columns):
        raise Disagreement("config.json", "setting 'columns' must name the target and any features, "
                           "each once")
    scaler = read_extra(extras, "scaler", StandardScaler.from_dict)
    if len(scaler.mean) != len(columns):
        raise Disagreement("scaler.json", f"{len(scaler.mean)} columns, but config.json names "
                           f"{len(columns)}")
    try:
        check_together(config)
    except UsageError as error:
        raise Disagreement("config.json", str(error)) from None


MODEL = ModelKind(task=NAME, config=ForecastModel, build=build_model, upgrade_v1=upgrade_v1,
                  check=check_saved, export_form=export_form, from_exported=from_exported)


def forecast_scaled(model: Forecaster, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Forecasts (N, horizon) in scaled units of windows (N, window, C), in batches."""
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            outputs.append(model(torch.from_numpy(inputs[start:start + batch_size])).numpy())
    return np.concatenate(outputs).astype(np.float64)  # (N, horizon)


def fit_scaler(values: np.ndarray, columns, path: str) -> StandardScaler:
    """The scaler of the training rows (T, C); refused when a column's mean or spread overflows
    (values near 1e308 square to infinity), which would scale every value to zero."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaler = StandardScaler.fit(values)
    for name, mean, std, column in zip(columns, scaler.mean, scaler.std, values.T):
        if not (np.isfinite(mean) and np.isfinite(std)):
            raise UsageError(f"{path}: column {name!r} holds values too large to scale (up to "
                             f"{np.abs(column).max():.3g}); divide the column by a power of ten")
    return scaler


def check_scaled(scaled: np.ndarray, columns, path: str, lines: np.ndarray) -> None:
    """Refuse scaled rows (T, C) that a float32 model cannot take: values so far beyond the
    training part's range that they overflow float32 (lines: each row's line in the file)."""
    fits = np.abs(scaled) < np.finfo(np.float32).max  # (T, C); False for NaN too
    if not fits.all():
        row, column = map(int, np.argwhere(~fits)[0])
        raise UsageError(f"{path}:{lines[row]}: column {columns[column]!r} holds a value too far "
                         f"beyond the training part's range to forecast from")


def to_model_space(values: np.ndarray, use_log: bool, path: str) -> np.ndarray:
    """Values as the model (and its scaler) sees them: their logarithm with --log."""
    if not use_log:
        return values
    if (values <= 0).any():
        raise UsageError(f"{path}: --log needs every value > 0, found {values.min()}; drop --log")
    return np.log(values)


def to_original_units(scaled_forecast: np.ndarray, scaler, use_log: bool) -> np.ndarray:
    """Target forecasts back from scaled model space to the series' own units."""
    values = scaler.inverse_column(scaled_forecast, 0)
    return np.exp(values) if use_log else values
