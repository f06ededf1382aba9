"""Forecasting of CSV time series: `lstmkit train forecast` and `lstmkit predict forecast`.

config.py    the settings (data, model, training) and their flags
model.py     window -> LSTM -> H steps at once, as a correction to the last value or season
train.py     read, split chronologically, scale on the training part, train, score the test part
metrics.py   MAE, RMSE, MASE, sMAPE and the naive baselines
plot.py      the test part against the forecasts
predict.py   the next H values after a series' end
"""
from lstmkit.tasks.forecast.config import NAME, PredictRecipe, TrainRecipe, check_recipe
from lstmkit.tasks.forecast.evaluate import evaluate_main
from lstmkit.tasks.forecast.model import MODEL
from lstmkit.tasks.forecast.predict import main as predict_main
from lstmkit.tasks.forecast.train import main as train_main

HELP = "forecast the next H steps of a CSV time series (univariate or with extra feature columns)"

__all__ = ["NAME", "HELP", "MODEL", "TrainRecipe", "PredictRecipe", "check_recipe", "train_main",
           "evaluate_main", "predict_main"]
