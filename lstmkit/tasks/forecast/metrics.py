"""Forecast accuracy: MAE, RMSE, MASE, sMAPE, and the naive baselines every forecast is judged against.

All functions take numpy arrays in the original units of the series (never the scaled ones), so
numbers are comparable with published results and with the baselines.

Shapes: forecasts and actuals are (N, H) — N forecast origins, H steps ahead each.
"""
from __future__ import annotations

import numpy as np


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - forecast) ** 2)))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); a step where both are 0 counts as a perfect 0."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.where(denominator == 0, 0.0, 2.0 * np.abs(actual - forecast) / np.where(denominator == 0, 1.0, denominator))
    return float(100.0 * np.mean(ratio))


def mase_scale(train_series: np.ndarray, season: int = 1) -> float:
    """In-sample MAE of the seasonal naive forecast on the training part (Hyndman & Koehler 2006).

    MASE = MAE(forecast) / this scale; < 1 means better than the one-step in-sample naive.
    """
    train_series = np.asarray(train_series, dtype=np.float64)
    if len(train_series) <= season:
        raise ValueError(f"MASE needs more than season={season} training points, got {len(train_series)}")
    scale = float(np.mean(np.abs(train_series[season:] - train_series[:-season])))
    # A constant training series would divide by zero; fall back to 1 so the number stays finite.
    return scale if scale > 0 else 1.0


def mase(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    return mae(actual, forecast) / scale


def all_metrics(actual: np.ndarray, forecast: np.ndarray, scale: float) -> dict[str, float]:
    return {"mae": mae(actual, forecast), "rmse": rmse(actual, forecast),
            "mase": mase(actual, forecast, scale), "smape": smape(actual, forecast)}


def naive_forecast(series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value: origin t (first forecast index) -> series[t-1] for all H steps.

    Returns (N, H).
    """
    last = series[origins - 1]  # (N,)
    return np.repeat(last[:, None], horizon, axis=1)


def seasonal_naive_forecast(series: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last observed season: step h ahead of origin t -> series[t - season + (h mod season)].

    Uses only values before the origin, also when the horizon is longer than the season. Returns (N, H).
    """
    steps = np.arange(horizon)  # (H,)
    index = origins[:, None] - season + (steps[None, :] % season)  # (N, H), all < origin
    if index.min() < 0:
        raise ValueError(f"seasonal naive needs {season} values before the first forecast origin")
    return series[index]
