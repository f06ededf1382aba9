"""`lstmkit evaluate --model DIR --test FILE` for every task: the scores the training report has,
also for a run interrupted before it wrote its report; and the sentiment time budget, which
stops training and still scores the best checkpoint beside the baseline."""
import importlib
import json

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.training import budget as budget_module

from test_forecast import seasonal_series, write_csv
from test_sentiment import write_fasttext

fit_module = importlib.import_module("lstmkit.training.fit")  # the module, not the function
TINY = ["--embedding-dim", "8", "--hidden-size", "8", "--min-freq", "1", "--no-progress",
        "--batch-size", "16", "--bag-buckets", "4096"]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    root = tmp_path_factory.mktemp("texts")
    return write_fasttext(root / "train.ft.txt", 160, seed=1), write_fasttext(root / "test.ft.txt", 40, seed=2)


def evaluation(out):
    return json.loads((out / "evaluation.json").read_text())


def test_evaluate_sentiment_gives_the_training_report(texts, tmp_path, capsys):
    train, test = texts
    out = tmp_path / "run"
    assert main(["train", "sentiment", "--train", str(train), "--test", str(test), "--out", str(out),
                 "--epochs", "2", *TINY]) == 0
    report = json.loads((out / "report.json").read_text())
    assert main(["evaluate", "--model", str(out), "--test", str(test), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "bag-of-words logreg (baseline)" in printed and "its n-gram bag alone" in printed
    scored = evaluation(out)
    for part in ("test", "bag", "baseline"):
        assert scored[part]["accuracy"] == pytest.approx(report[part]["accuracy"])
        assert scored[part]["n"] == 40


def test_evaluate_an_interrupted_sentiment_run(texts, tmp_path, monkeypatch, capsys):
    """Ctrl-C in the second epoch: no report, but best/ from the first; evaluate scores it."""
    train, test = texts
    out = tmp_path / "run"
    validate = fit_module._Trainer.validate
    calls = []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return validate(self)

    monkeypatch.setattr(fit_module._Trainer, "validate", interrupted)
    assert main(["train", "sentiment", "--train", str(train), "--test", str(test), "--out", str(out),
                 "--epochs", "3", *TINY]) == 130
    monkeypatch.undo()
    assert not (out / "report.json").exists() and (out / "best" / "config.json").is_file()
    assert main(["evaluate", "--model", str(out), "--test", str(test), "--no-progress"]) == 0
    scored = evaluation(out)
    assert scored["test"]["n"] == 40 and 0 <= scored["test"]["accuracy"] <= 1
    assert scored["baseline"]["accuracy"] >= 0.9  # fitted on the run's training texts


def test_evaluate_before_the_first_epoch_ended(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "recipe.json").write_text("{}")
    assert main(["evaluate", "--model", str(out), "--test", str(tmp_path / "t.txt")]) == 2
    assert "no checkpoint yet" in capsys.readouterr().err


def test_time_budget_stops_training_and_still_reports(texts, tmp_path, monkeypatch):
    monkeypatch.setattr(budget_module, "MARGIN_SECONDS", 0.0)
    train, test = texts
    out = tmp_path / "run"
    assert main(["train", "sentiment", "--train", str(train), "--test", str(test), "--out", str(out),
                 "--epochs", "200", "--max-minutes", "0.02", *TINY[:-4], "--batch-size", "2",
                 "--bag-buckets", "4096", "--patience", "500"]) == 0  # no early stop first
    report = json.loads((out / "report.json").read_text())
    assert report["stopped_by_budget"] and report["epochs_run"] < 200
    assert {"test", "baseline", "bag"} <= set(report)


def test_evaluate_forecast_and_timestamps_in_predict(tmp_path, capsys):
    level, _ = seasonal_series(160)
    dates = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(160)]
    path = write_csv(tmp_path / "s.csv", ["month", "sales"], list(zip(dates, (f"{v:.3f}" for v in level))))
    out = tmp_path / "run"
    assert main(["train", "forecast", "--csv", str(path), "--target", "sales", "--window", "24",
                 "--horizon", "6", "--season", "12", "--epochs", "2", "--hidden-size", "8",
                 "--out", str(out), "--no-progress", "--no-plot"]) == 0
    trained = json.loads((out / "test_metrics.json").read_text())
    assert main(["evaluate", "--model", str(out), "--test", str(path)]) == 0
    assert evaluation(out)["test"]["lstm"]["mae"] == pytest.approx(trained["test"]["lstm"]["mae"])
    capsys.readouterr()
    assert main(["predict", "forecast", "--model", str(out), "--csv", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "month,sales"  # the date column's stamps continue past the last row (2013-04)
    assert [line.split(",")[0] for line in lines[1:]] == ["2013-05", "2013-06", "2013-07", "2013-08",
                                                          "2013-09", "2013-10"]


def test_evaluate_language_model_and_seqmnist(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 60)
    lm = tmp_path / "lm"
    assert main(["train", "lm", "--text", str(text), "--test-text", str(text), "--hidden-size", "8",
                 "--num-layers", "1", "--epochs", "1", "--bptt", "10", "--batch-size", "4",
                 "--out", str(lm), "--no-progress"]) == 0
    trained = json.loads((lm / "lm_metrics.json").read_text())["test_loss"]
    assert main(["evaluate", "--model", str(lm), "--test", str(text), "--no-progress"]) == 0
    assert evaluation(lm)["test_loss"] == pytest.approx(trained)

    rng = np.random.default_rng(0)
    npz = tmp_path / "m.npz"
    np.savez(npz, x_train=rng.integers(0, 255, (60, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 60), x_test=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
             y_test=rng.integers(0, 10, 20))
    mnist = tmp_path / "mnist"
    assert main(["train", "seqmnist", "--npz", str(npz), "--valid-size", "10", "--hidden-size", "8",
                 "--epochs", "1", "--out", str(mnist), "--no-progress", "--mode", "permuted"]) == 0
    trained = json.loads((mnist / "test_metrics.json").read_text())["test_accuracy"]
    assert main(["evaluate", "--model", str(mnist), "--test", str(npz)]) == 0
    assert evaluation(mnist)["test_accuracy"] == pytest.approx(trained)



def test_unreadable_run_settings_are_one_line_refusals(tmp_path):
    from lstmkit.errors import UsageError
    from lstmkit.tasks.evaluation import read_run_recipe

    for text, reason in (("[" * 100000, "nested too deeply"), ("[1, 2]", "not a JSON object"),
                         ("{not json", "cannot read the run's settings")):
        (tmp_path / "recipe.json").write_text(text)
        with pytest.raises(UsageError, match=reason):
            read_run_recipe(tmp_path)
