"""`lstmkit predict forecast`: the next H values after the end of a series."""
from __future__ import annotations

import numpy as np

from lstmkit.data.series import StandardScaler, read_series_csv
from lstmkit.errors import UsageError
from lstmkit.tasks.forecast.config import ForecastModel, PredictRecipe
from lstmkit.tasks.forecast.model import (MODEL, check_scaled, forecast_scaled, to_model_space,
                                          to_original_units)
from lstmkit.tasks.saved_model import load_model


def forecast_after_end(model, config: ForecastModel, scaler: StandardScaler, values: np.ndarray,
                       path: str, lines: np.ndarray | None = None) -> np.ndarray:
    """The next H values (original units) after the last row of `values` (T, C); lines (T,):
    each row's line in the file, for messages (default: the row numbers after a header)."""
    window = config.window
    if len(values) < window:
        raise UsageError(f"{path} has {len(values)} rows; the model needs the last {window} (--window)")
    scaled = scaler.transform(to_model_space(values[-window:], config.log, path))  # (window, C)
    lines = np.arange(2, len(values) + 2) if lines is None else lines
    check_scaled(scaled, config.columns, path, lines[-window:])
    prediction = forecast_scaled(model, scaled[None].astype(np.float32))[0]  # (H,)
    return to_original_units(prediction, scaler, config.log)


def main(recipe: PredictRecipe) -> int:
    """The next H values as CSV: beside their time stamps when the series has a date column
    (its step continued past the last row), else beside their step numbers 1..H."""
    options = recipe.predict
    loaded = load_model(options.model, MODEL)
    config = loaded.config
    scaler = StandardScaler.from_dict(loaded.extras["scaler"])
    series = read_series_csv(options.csv, list(config.columns), missing=options.missing or config.missing,
                             encoding=options.encoding)
    forecast = forecast_after_end(loaded.model, config, scaler, series.values, str(options.csv),
                                  series.line_numbers)
    if series.stamps is not None:
        keys, name = series.stamps.after_end(len(forecast)), series.stamps.column
    else:
        keys, name = [str(step) for step in range(1, len(forecast) + 1)], "step"
    print(f"{name},{config.columns[0]}")
    for key, value in zip(keys, forecast):
        print(f"{key},{value:.6g}")
    return 0
