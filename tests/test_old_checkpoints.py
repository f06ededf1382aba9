"""Checkpoints written by the first release (format version 1, tests/data/checkpoints_v1, made by
tests/make_old_checkpoints.py on that release) load with today's code and predict the same."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.mnist import to_sequences
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.tasks import forecast, language_model, seqmnist, sentiment
from lstmkit.tasks.saved_model import load_model

OLD = Path(__file__).parent / "data" / "checkpoints_v1"
EXPECTED = json.loads((OLD / "expected.json").read_text())


@pytest.mark.parametrize("name", ["sentiment", "sentiment_ensemble"])
def test_sentiment_predicts_the_same(name, capsys):
    expected = EXPECTED[name]
    assert main(["predict", "sentiment", "--model", str(OLD / name), "--json", *expected["texts"]]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in records] == expected["labels"]
    for record, probabilities in zip(records, expected["probabilities"]):
        assert record["probabilities"] == pytest.approx(probabilities, abs=1e-6)
    loaded = load_model(OLD / name, sentiment.MODEL)
    assert loaded.config.max_len == 5 and loaded.config.lowercase
    assert loaded.config.ensemble == (2 if name == "sentiment_ensemble" else 1)


@pytest.mark.parametrize("name", ["lm_char", "lm_word"])
def test_language_model_generates_and_scores_the_same(name, capsys):
    expected = EXPECTED[name]
    assert main(["generate", "--model", str(OLD / name), "--prime", expected["prime"],
                 "--length", "12", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == expected["generated"]
    loaded = load_model(OLD / name, language_model.MODEL)
    vocab = Vocabulary.from_json(loaded.extras["vocab"])
    ids = torch.tensor(vocab.encode(Tokenizer(loaded.config.level)(expected["scored_text"])))
    with torch.no_grad():
        scores, _ = loaded.model(ids.view(1, -1))  # (1, T, V)
    torch.testing.assert_close(scores[0], torch.tensor(expected["scores"]), rtol=1e-5, atol=1e-5)


def test_forecaster_predicts_the_same_and_its_run_resumes(tmp_path, capsys):
    expected = EXPECTED["forecast"]
    series = OLD / "forecast" / "series.csv"
    assert main(["predict", "forecast", "--model", str(OLD / "forecast"), "--csv", str(series)]) == 0
    printed = capsys.readouterr().out.splitlines()
    old = expected["printed"].splitlines()
    assert printed[0] == old[0] == "step,sales" and len(printed) == len(old)
    for line, old_line in zip(printed[1:], old[1:]):
        assert float(line.split(",")[1]) == pytest.approx(float(old_line.split(",")[1]), rel=1e-5)
    loaded = load_model(OLD / "forecast", forecast.MODEL)
    assert loaded.config.columns == ("sales", "temp") and loaded.config.log

    run = tmp_path / "run"  # the old run's last/ (optimizer, schedule, RNG) carries on for an epoch
    shutil.copytree(OLD / "forecast", run)
    assert main(["train", "forecast", "--csv", str(series), "--target", "sales", "--features", "temp",
                 "--window", "12", "--horizon", "4", "--season", "12", "--baseline", "seasonal",
                 "--log", "--epochs", "3", "--hidden-size", "4", "--out", str(run), "--resume",
                 "--no-progress", "--no-plot"]) == 0
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]


def test_sequence_classifier_predicts_the_same():
    expected = EXPECTED["seqmnist"]
    loaded = load_model(OLD / "seqmnist", seqmnist.MODEL)
    assert loaded.config.mode == "permuted" and loaded.config.steps == 784
    images = np.array(expected["images"], dtype=np.uint8)  # (N, 28, 28)
    permutation = np.array(loaded.extras["permutation"])
    with torch.no_grad():
        logits = loaded.model(to_sequences(images, "permuted", permutation))  # (N, 10)
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), rtol=1e-5, atol=1e-5)
