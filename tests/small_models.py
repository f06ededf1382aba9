"""Small models of the tasks trained in a few steps, shared by the tests that use trained models (the
viewer, export), and the texts they read."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from lstmkit.cli import main
from test_forecast import seasonal_series, write_csv
from test_sentiment import write_fasttext

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "said", "no", "yes", "we", "go"]


def quoted_text(lines: int, seed: int = 0) -> str:
    """Lines of words, some with a quoted part: features a probe can look for (quotes, line ends)."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = rng.choices(WORDS, k=rng.randint(3, 9))
        if rng.random() < 0.5:
            start = rng.randrange(len(words))
            words[start] = '"' + words[start]
            words[-1] = words[-1] + '"'
        out.append(" ".join(words))
    return "\n".join(out) + "\n"


def train_char_lm(root: Path) -> Path:
    """A 2-layer character LSTM trained for a few chunks; returns its run folder."""
    text = root / "lm.txt"
    text.write_text(quoted_text(120))
    out = root / "lm"
    status = main(["train", "lm", "--text", str(text), "--level", "char", "--hidden-size", "12", "--num-layers", "2",
                   "--embed-size", "8", "--bptt", "40", "--batch-size", "8", "--epochs", "1", "--lr", "0.01",
                   "--out", str(out), "--no-progress", "--seed", "0"])
    assert status == 0
    return out


def train_sentiment(root: Path) -> Path:
    """A small BiLSTM sentiment classifier (labels 1 and 2); returns its run folder."""
    data = write_fasttext(root / "train.ft.txt", 120, seed=1)
    out = root / "sentiment"
    status = main(["train", "sentiment", "--train", str(data), "--out", str(out), "--epochs", "2", "--batch-size",
                   "16", "--embedding-dim", "8", "--hidden-size", "8", "--lr", "0.03", "--min-freq", "1",
                   "--no-progress", "--no-baseline", "--seed", "0", "--backend", "native",
                   "--bag-buckets", "4096"])
    assert status == 0
    return out


def series_file(root: Path) -> Path:
    level, other = seasonal_series(96)
    return write_csv(root / "series.csv", ["month", "sales", "temp"],
                     [(f"m{i}", f"{a:.4f}", f"{b:.4f}") for i, (a, b) in enumerate(zip(level, other))])


def train_forecaster(root: Path) -> Path:
    """A seasonal-baseline forecaster of a monthly series with one feature; returns its run folder."""
    out = root / "forecast"
    status = main(["train", "forecast", "--csv", str(series_file(root)), "--target", "sales", "--features", "temp",
                   "--window", "12", "--horizon", "3", "--season", "12", "--baseline", "seasonal", "--epochs", "2",
                   "--hidden-size", "6", "--out", str(out), "--no-progress", "--no-plot", "--seed", "0"])
    assert status == 0
    return out


_TRAINED: dict[str, dict] = {}


def trained_runs(tmp_path_factory) -> dict:
    """The three small models, trained once per test session and shared by the viewer's test files."""
    if "runs" not in _TRAINED:
        root = tmp_path_factory.mktemp("view-models")
        _TRAINED["runs"] = {"root": root, "lm": train_char_lm(root), "sentiment": train_sentiment(root),
                            "forecast": train_forecaster(root)}
    return _TRAINED["runs"]


def direct_trace(model: torch.nn.Module, *inputs) -> dict:
    """(module name, layer, direction) -> {name: (T, H) numpy} of batch row 0, straight from lstmkit.trace."""
    import lstmkit

    model.eval()
    with torch.no_grad(), lstmkit.trace(model) as recording:
        model(*inputs)
    out = {}
    for record in recording.records:
        rows = {name: (t[0] if t.dim() == 3 and record.module.batch_first else t[:, 0] if t.dim() == 3 else t)
                for name, t in record.tensors.items()}
        out[(record.module_name, record.layer, record.direction)] = {n: v.numpy() for n, v in rows.items()}
    return out


def assert_close(actual, expected, tolerance=1e-6):
    """Equal within an absolute tolerance (NaN where the other is NaN), and not empty."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.size > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance)
