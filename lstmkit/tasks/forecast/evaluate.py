"""`lstmkit evaluate` for a forecasting run: the test part of a series scored as the run's
training report scores it (model, naive and seasonal-naive forecasts; the run's split, or
--test-fraction), with the run's scaler."""
from __future__ import annotations

import dataclasses

from lstmkit.data.series import StandardScaler
from lstmkit.recipe import from_json
from lstmkit.tasks.evaluation import read_run_recipe, write_report
from lstmkit.tasks.forecast.config import ForecastData, TrainRecipe
from lstmkit.tasks.forecast.model import MODEL
from lstmkit.tasks.forecast.train import prepare, print_scores, score_test
from lstmkit.tasks.saved_model import load_model


def evaluate_main(recipe) -> int:
    options = recipe.evaluate
    loaded = load_model(options.model, MODEL, backend=options.backend)
    config = loaded.config
    run = read_run_recipe(options.model)
    data = from_json(ForecastData, {**run.get("data", {}), "csv": str(options.test),
                                    "target": config.columns[0]})
    data = dataclasses.replace(
        data, csv=options.test, target=config.columns[0], features=",".join(config.columns[1:]),
        test_fraction=options.test_fraction or data.test_fraction,
        encoding=options.encoding or data.encoding)
    prepared = prepare(TrainRecipe(data=data, model=config),
                       StandardScaler.from_dict(loaded.extras["scaler"]))
    summary, _ = score_test(loaded.model, prepared, config)
    print_scores(summary, config.columns[0], config.horizon)
    print(f"report: {write_report(options, summary)}")
    return 0
