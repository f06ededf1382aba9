"""Forecasting: CSV reading and its missing-value policy, splits, scaling, metrics, baselines, CLI."""
import argparse
import json
import math

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.series import (StandardScaler, check_enough_rows, forecast_origins, make_windows,
                                 read_series_csv, split_points)
from lstmkit.errors import UsageError
from lstmkit.recipe import add_flags, from_args
from lstmkit.tasks import forecast
from lstmkit.tasks.forecast.metrics import (mae, mase, mase_scale, naive_forecast, rmse,
                                            seasonal_naive_forecast, smape)
from lstmkit.tasks.forecast.model import Forecaster
from lstmkit.tasks.forecast.train import prepare, with_columns


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def seasonal_series(length=160, season=12):
    t = np.arange(length)
    level = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / season)
    other = np.cos(2 * np.pi * t / season)
    return level, other


@pytest.fixture
def series_csv(tmp_path):
    level, other = seasonal_series()
    return write_csv(tmp_path / "series.csv", ["month", "sales", "temp"],
                     [(f"m{i}", f"{a:.4f}", f"{b:.4f}") for i, (a, b) in enumerate(zip(level, other))])


# ---- metrics and baselines ----------------------------------------------------------------------

def test_metrics_on_known_values():
    actual, forecast_ = np.array([[1.0, 2.0, 4.0]]), np.array([[2.0, 2.0, 1.0]])
    assert mae(actual, forecast_) == pytest.approx(4 / 3)
    assert rmse(actual, forecast_) == pytest.approx(math.sqrt(10 / 3))
    # sMAPE: 2|a-f|/(|a|+|f|): 2/3, 0, 6/5, mean times 100
    assert smape(actual, forecast_) == pytest.approx(100 * (2 / 3 + 0 + 6 / 5) / 3)
    assert smape(np.zeros((1, 2)), np.zeros((1, 2))) == 0.0
    train = np.array([1.0, 3.0, 2.0, 6.0])
    assert mase_scale(train, season=1) == pytest.approx((2 + 1 + 4) / 3)
    assert mase_scale(train, season=2) == pytest.approx((1 + 3) / 2)
    assert mase(actual, forecast_, scale=2.0) == pytest.approx(mae(actual, forecast_) / 2)


def test_naive_baselines_use_only_the_past():
    series = np.arange(100, dtype=float)
    origins = np.array([30, 50])
    assert naive_forecast(series, origins, 3).tolist() == [[29, 29, 29], [49, 49, 49]]
    # season 4, horizon 6: steps wrap around the last observed season, never reach the origin
    seasonal = seasonal_naive_forecast(series, origins, 6, season=4)
    assert seasonal[0].tolist() == [26, 27, 28, 29, 26, 27]
    assert (seasonal < origins[:, None]).all()


# ---- reading CSV --------------------------------------------------------------------------------

def test_reads_named_columns_in_file_order(series_csv):
    series = read_series_csv(series_csv, ["temp", "sales"])
    assert series.values.shape == (160, 2)
    assert series.values[0, 1] == pytest.approx(100.0)
    assert series.values[0, 0] == pytest.approx(1.0)


def test_missing_value_policies(tmp_path):
    path = write_csv(tmp_path / "gaps.csv", ["t", "y"], [(0, 1.0), (1, ""), (2, 3.0), (3, "NA"), (4, 9.0)])
    with pytest.raises(UsageError, match=r"gaps.csv:3: column 'y' has a missing value \(2 in all\)"):
        read_series_csv(path, ["y"])
    assert read_series_csv(path, ["y"], missing="interpolate").values[:, 0].tolist() == [1, 2, 3, 6, 9]
    dropped = read_series_csv(path, ["y"], missing="drop")
    assert dropped.values[:, 0].tolist() == [1, 3, 9]
    assert dropped.line_numbers.tolist() == [2, 4, 6]


@pytest.mark.parametrize("rows, columns, message", [
    ([(0, 1.0), (1, "abc")], ["y"], r"bad.csv:3: column 'y' holds 'abc', which is not a number"),
    ([(0, 1.0)], ["z"], r"unknown column\(s\) 'z'; the file has: t, y"),
    ([(0, 1.0), (1,)], ["y"], r"bad.csv:3: 1 fields, but the header has 2"),
    ([(0, "inf")], ["y"], r"only finite numbers"),
])
def test_bad_cells_are_refused_with_file_and_line(tmp_path, rows, columns, message):
    path = write_csv(tmp_path / "bad.csv", ["t", "y"], rows)
    with pytest.raises(UsageError, match=message):
        read_series_csv(path, columns)


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UsageError, match="is empty"):
        read_series_csv(tmp_path / "empty.csv", ["y"])
    (tmp_path / "header.csv").write_text("t,y\n")
    with pytest.raises(UsageError, match="no data rows"):
        read_series_csv(tmp_path / "header.csv", ["y"])


# ---- split, windows, scaling --------------------------------------------------------------------

def test_chronological_split_and_windows():
    valid_start, test_start = split_points(100, 0.2, 0.1)
    assert (valid_start, test_start) == (70, 90)
    origins = forecast_origins(valid_start, test_start, window=8, horizon=5)
    assert origins[0] == 70 and origins[-1] == 85  # targets stay inside [70, 90)
    values = np.arange(100, dtype=float)[:, None]  # (T, 1)
    inputs, targets = make_windows(values, 0, origins, window=8, horizon=5)
    assert inputs.shape == (16, 8, 1) and targets.shape == (16, 5)
    assert inputs[0, :, 0].tolist() == list(range(62, 70)) and targets[0].tolist() == list(range(70, 75))
    with pytest.raises(UsageError, match="too few for --window 30 and --horizon 12"):
        check_enough_rows(100, 30, 12, valid_start, test_start)


def test_scaler_is_fitted_on_the_training_part_only(series_csv, tmp_path):
    prepared = prepare(train_recipe(series_csv, tmp_path))
    raw, scaled, scaler, valid_start = prepared.raw, prepared.scaled, prepared.scaler, prepared.valid_start
    assert np.allclose(scaler.mean, raw[:valid_start].mean(axis=0))
    assert not np.allclose(scaler.mean, raw.mean(axis=0))  # the series trends: the test part differs
    assert np.allclose(scaled[:valid_start].mean(axis=0), 0, atol=1e-9)
    back = StandardScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert np.allclose(back.inverse_column(scaled[:, 0], 0), raw[:, 0])


def test_seasonal_baseline_model_with_zero_head_is_seasonal_naive():
    model = Forecaster(1, 8, 1, horizon=5, baseline="seasonal", season=3)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    series = np.arange(40, dtype=float)
    inputs = torch.tensor(series[None, 20:30, None], dtype=torch.float32)  # window 10, origin 30
    expected = seasonal_naive_forecast(series, np.array([30]), 5, season=3)
    assert model(inputs).detach().numpy().tolist() == expected.astype(np.float32).tolist()


# ---- command line -------------------------------------------------------------------------------

def train_recipe(csv, tmp_path, *extra):
    parser = argparse.ArgumentParser()
    add_flags(parser, forecast.TrainRecipe)
    args = parser.parse_args(["--csv", str(csv), "--target", "sales", "--window", "24", "--horizon", "6",
                              "--season", "12", "--out", str(tmp_path / "run"), *extra])
    return with_columns(from_args(forecast.TrainRecipe, args))


def test_train_and_predict_forecast_cli(series_csv, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "forecast", "--csv", str(series_csv), "--target", "sales", "--features", "temp",
            "--window", "24", "--horizon", "6", "--season", "12", "--baseline", "seasonal", "--epochs", "3",
            "--hidden-size", "8", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "seasonal_naive" in printed and "MASE" in printed
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert set(metrics["test"]) == {"lstm", "naive", "seasonal_naive"}
    assert set(metrics["test"]["lstm"]) == {"mae", "rmse", "mase", "smape", "z_mse", "z_mae"}
    assert (out / "best" / "scaler.json").is_file() and (out / "forecast.png").is_file()

    assert main(["predict", "forecast", "--model", str(out), "--csv", str(series_csv)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "step,sales" and len(lines) == 7
    values = [float(line.split(",")[1]) for line in lines[1:]]
    assert all(100 < v < 250 for v in values)  # near the series' end level (~180), in original units


@pytest.mark.parametrize("rows, extra, message", [
    ("gap", [], "has a missing value"),
    ("text", [], "which is not a number"),
    ("short", [], "too few for --window 24 and --horizon 6"),
    ("ok", ["--target", "nope"], "unknown column"),
    ("ok", ["--features", "sales,zzz"], "unknown column"),
    ("ok", ["--baseline", "seasonal", "--season", "1"], "--baseline seasonal needs 2 <= --season"),
])
def test_train_forecast_bad_input_exits_2(tmp_path, capsys, rows, extra, message):
    level, _ = seasonal_series(40 if rows == "short" else 160)
    cells = [f"{v:.3f}" for v in level]
    if rows == "gap":
        cells[50] = ""
    if rows == "text":
        cells[50] = "n/a?"
    path = write_csv(tmp_path / "s.csv", ["sales"], [(c,) for c in cells])
    argv = ["train", "forecast", "--csv", str(path), "--target", "sales", "--window", "24", "--horizon", "6",
            "--epochs", "1", "--hidden-size", "4", "--out", str(tmp_path / "run"), "--no-progress", "--no-plot", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_interpolate_policy_trains(tmp_path):
    level, _ = seasonal_series()
    cells = [f"{v:.3f}" for v in level]
    cells[40] = cells[41] = ""
    path = write_csv(tmp_path / "s.csv", ["sales"], [(c,) for c in cells])
    argv = ["train", "forecast", "--csv", str(path), "--target", "sales", "--window", "24", "--horizon", "6",
            "--epochs", "1", "--hidden-size", "4", "--missing", "interpolate", "--out", str(tmp_path / "run"), "--no-progress",
            "--no-plot"]
    assert main(argv) == 0


def test_airline_passengers_shared_data(shared_data, tmp_path):
    path = shared_data / "timeseries" / "airline-passengers.csv"
    series = read_series_csv(path, ["Passengers"])
    assert series.values.shape == (144, 1) and series.values[0, 0] == 112
