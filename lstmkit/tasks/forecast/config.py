"""`lstmkit train forecast` and `lstmkit predict forecast`: every setting, with its flag."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit.data.series import MISSING_POLICIES
from lstmkit.errors import UsageError
from lstmkit.recipe import at_least, between, option, section
from lstmkit.training.config import TrainConfig

NAME = "forecast"
BASELINES = ("last", "seasonal")
SPLITS = ("fractions", "informer")
FRACTION = between(0, 1, high_open=True)


@dataclass
class ForecastData:
    csv: Path | None = option(None, "CSV file with a header row", required=True, metavar="FILE")
    target: str | None = option(None, "column to forecast", required=True, metavar="COLUMN")
    features: str = option("", "extra input columns, comma separated", metavar="A,B,...",
                           default_text="none")
    split: str = option("fractions", "fractions: train | --valid-fraction | --test-fraction of the "
                        "rows; informer: 12 | 4 | 4 months of ETT-style data (needs a date column; "
                        "later rows unused), as published tables score it", choices=SPLITS)
    valid_fraction: float = option(0.15, "share of the rows (after the training part) for "
                                   "validation", check=FRACTION)
    test_fraction: float = option(0.15, "share of the rows (the end) for the test", check=FRACTION)
    encoding: str = option("utf-8", "text encoding of the CSV file")
    plot: bool = option(True, "plot the test part against the forecasts (forecast.png)")

    def columns(self) -> tuple[str, ...]:
        """The target first, then the features (each once)."""
        features = [name.strip() for name in self.features.split(",") if name.strip()]
        return (self.target, *[name for name in features if name != self.target])


@dataclass
class ForecastModel:
    """What a checkpoint needs to rebuild the forecaster and read its series."""
    columns: tuple[str, ...] = option((), flag=False)   # the target, then the features
    window: int = option(24, "past steps the model sees", check=at_least(1))
    horizon: int = option(12, "future steps forecast at once", check=at_least(1))
    season: int = option(1, "season length in steps (12 monthly, 24 hourly) for the seasonal "
                         "baseline and MASE", check=at_least(1))
    log: bool = option(False, "model log(values) (positive series with multiplicative seasonality)")
    missing: str = option("refuse", "missing values: refuse, interpolate linearly, or drop the rows",
                          choices=MISSING_POLICIES)
    hidden_size: int = option(64, "LSTM units", check=at_least(1))
    num_layers: int = option(1, "stacked LSTM layers", check=at_least(1))
    dropout: float = option(0.0, "dropout between LSTM layers", check=FRACTION)
    baseline: str = option("last", "the model learns a correction to: the last value, or the last "
                           "season (needs --season)", choices=BASELINES)


def check_together(model: ForecastModel) -> None:
    """Settings that only make sense together, refused before the data is read."""
    if model.baseline == "seasonal" and (model.season < 2 or model.season > model.window):
        raise UsageError(f"--baseline seasonal needs 2 <= --season <= --window, got season "
                         f"{model.season}, window {model.window}")


@dataclass
class TrainRecipe:
    data: ForecastData = section(ForecastData)
    model: ForecastModel = section(ForecastModel)
    training: TrainConfig = section(lambda: TrainConfig(
        out=Path("runs/forecast"), epochs=50, batch_size=32, lr=3e-3, lr_schedule="cosine",
        clip=1.0, patience=10), "training")


def check_recipe(recipe: TrainRecipe) -> None:
    """Settings that only make sense together, refused before the run folder or data is touched."""
    check_together(recipe.model)


@dataclass
class PredictOptions:
    model: Path | None = option(None, "run folder of `lstmkit train forecast` (uses its best/) or a "
                                "checkpoint folder", required=True, metavar="DIR")
    csv: Path | None = option(None, "series with the same columns; forecasts follow its end",
                              required=True, metavar="FILE")
    missing: str | None = option(None, "missing-value policy", choices=MISSING_POLICIES,
                                 default_text="the one used in training")
    encoding: str = option("utf-8", "text encoding of the CSV file")


@dataclass
class PredictRecipe:
    predict: PredictOptions = section(PredictOptions, "prediction")


def upgrade_v1(model: dict, extras: dict) -> tuple[dict, dict]:
    """Format 1 saved the same settings under the same names."""
    return model, extras
