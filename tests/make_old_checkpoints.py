"""Write tests/data/checkpoints_v1/: small checkpoints of every task as the first release saved them.

Run ONCE, on the old release (format version 1, commit 2af31b8), never on the current code:

    git archive 2af31b8 | tar -x -C /tmp/lstmkit-v1
    PYTHONPATH=/tmp/lstmkit-v1 python tests/make_old_checkpoints.py tests/data/checkpoints_v1

It trains tiny models of every task for a step or two on tiny synthetic data through the CLI of
that release, keeps each run's best/ checkpoint (and one last/, to resume from), and records what
each model predicts on fixed inputs in expected.json. tests/test_old_checkpoints.py loads them
with the current code and asserts the same predictions: checkpoints users already have must keep
working. Not collected by pytest (no test_ prefix) and not importable by the current code.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from lstmkit.cli import main
from test_sentiment import write_fasttext  # tests/ is this script's folder, so on its path

SENTIMENT_TEXTS = ["this was great and i love it", "awful broken item", "really good book",
                   "very poor and bad", "the item it was"]
LM_CHAR_TEXT = "abcd efg\n" * 60
LM_WORD_TEXT = "the cat sat on the mat\nthe dog sat on the log\na bird flew over the house\n" * 20


def run_cli(argv: list[str]) -> str:
    """Run `lstmkit ARGV` of the old release; its standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    if status != 0:
        raise SystemExit(f"lstmkit {' '.join(argv)} exited {status}")
    return out.getvalue()


def keep(run: Path, target: Path, *names: str) -> None:
    """Copy the named checkpoint folders of a run (best, last) into the test data."""
    for name in names:
        shutil.copytree(run / name, target / name)


def sentiment(work: Path, target: Path, name: str, *extra: str) -> dict:
    train = write_fasttext(work / "train.ft.txt", 60, seed=1)
    run = work / name
    run_cli(["train", "sentiment", "--train", str(train), "--out", str(run), "--epochs", "2",
             "--batch-size", "16", "--embedding-dim", "6", "--hidden-size", "5", "--min-freq", "1",
             "--max-len", "5", "--lr", "0.03", "--no-progress", "--no-baseline", *extra])
    keep(run, target / name, "best")
    printed = run_cli(["predict", "sentiment", "--model", str(run), "--json", *SENTIMENT_TEXTS])
    records = [json.loads(line) for line in printed.splitlines()]
    return {"texts": SENTIMENT_TEXTS, "labels": [r["label"] for r in records],
            "probabilities": [r["probabilities"] for r in records]}


def language_model(work: Path, target: Path, name: str, text: str, level: str, prime: str,
                   *extra: str) -> dict:
    from lstmkit.checkpoint import load_checkpoint
    from lstmkit.data.corpus import TokenVocabulary, tokenize
    from lstmkit.tasks.language_model import model_from_config

    path = work / f"{name}.txt"
    path.write_text(text)
    run = work / name
    run_cli(["train", "lm", "--text", str(path), "--level", level, "--hidden-size", "8",
             "--num-layers", "1", "--batch-size", "4", "--bptt", "8", "--epochs", "1",
             "--max-batches", "2", "--lr", "0.03", "--out", str(run), "--no-progress", *extra])
    keep(run, target / name, "best")
    generated = run_cli(["generate", "--model", str(run), "--prime", prime, "--length", "12",
                         "--temperature", "0"])
    checkpoint = load_checkpoint(run / "best", task="lm")
    model = model_from_config(checkpoint.model_config)
    model.load_state_dict(checkpoint.state_dict)
    vocab = TokenVocabulary.from_dict(checkpoint.extras["vocab"])
    ids = vocab.encode(tokenize(text[:24], level))
    with torch.no_grad():
        scores, _ = model.eval()(ids.view(1, -1))  # (1, T, V)
    return {"prime": prime, "generated": generated, "scored_text": text[:24],
            "scores": scores[0].tolist()}


def forecast(work: Path, target: Path) -> dict:
    t = np.arange(120)
    level = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)
    other = 2 + np.cos(2 * np.pi * t / 12)  # positive: --log takes every column
    csv = target / "forecast" / "series.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("month,sales,temp\n" + "".join(f"m{i},{a:.4f},{b:.4f}\n"
                                                  for i, (a, b) in enumerate(zip(level, other))))
    run = work / "forecast"
    run_cli(["train", "forecast", "--csv", str(csv), "--target", "sales", "--features", "temp",
             "--window", "12", "--horizon", "4", "--season", "12", "--baseline", "seasonal",
             "--log", "--epochs", "2", "--hidden-size", "4", "--out", str(run), "--no-progress",
             "--no-plot"])
    keep(run, target / "forecast", "best", "last")
    from lstmkit.tasks.forecast import forecast_after_end, load_forecaster
    from lstmkit.data.series import read_series_csv
    model, config, scaler = load_forecaster(run)
    values = read_series_csv(csv, config["columns"]).values
    return {"printed": run_cli(["predict", "forecast", "--model", str(run), "--csv", str(csv)]),
            "forecast": forecast_after_end(model, config, scaler, values, str(csv)).tolist()}


def seqmnist(work: Path, target: Path) -> dict:
    from lstmkit.checkpoint import load_checkpoint
    from lstmkit.data.mnist import to_sequences
    from lstmkit.tasks.seqmnist import build_classifier

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 28, 28)).astype(np.uint8)  # (N, H, W)
    labels = rng.integers(0, 10, 60).astype(np.uint8)
    npz = work / "digits.npz"
    np.savez(npz, x_train=images[:50], y_train=labels[:50], x_test=images[50:], y_test=labels[50:])
    run = work / "seqmnist"
    run_cli(["train", "seqmnist", "--npz", str(npz), "--mode", "permuted", "--hidden-size", "4",
             "--epochs", "1", "--max-batches", "2", "--batch-size", "8", "--valid-size", "10",
             "--limit-test", "4", "--seed", "3", "--out", str(run), "--no-progress"])
    keep(run, target / "seqmnist", "best")
    checkpoint = load_checkpoint(run / "best", task="seqmnist")
    model = build_classifier(checkpoint.model_config)
    model.load_state_dict(checkpoint.state_dict)
    permutation = np.array(checkpoint.extras["permutation"])
    probe = images[50:52]
    with torch.no_grad():
        logits = model.eval()(to_sequences(probe, "permuted", permutation))  # (2, 10)
    return {"images": probe.tolist(), "logits": logits.tolist()}


def main_() -> int:
    target = Path(sys.argv[1])
    if target.exists():
        raise SystemExit(f"{target} exists; remove it first (it is written once, by the old release)")
    target.mkdir(parents=True)
    work = target.parent / (target.name + "-work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    torch.set_num_threads(1)
    expected = {
        "written_by": "lstmkit 0.1.0 at 2af31b8 (checkpoint format version 1)",
        "sentiment": sentiment(work, target, "sentiment", "--ngram-buckets", "64"),
        "sentiment_ensemble": sentiment(work, target, "sentiment_ensemble", "--ensemble", "2",
                                        "--layers", "2", "--pooling", "max+mean"),
        "lm_char": language_model(work, target, "lm_char", LM_CHAR_TEXT, "char", "ab",
                                  "--embed-size", "4"),
        "lm_word": language_model(work, target, "lm_word", LM_WORD_TEXT, "word", "the cat",
                                  "--softmax", "adaptive", "--cutoffs", "4,8"),
        "forecast": forecast(work, target),
        "seqmnist": seqmnist(work, target),
    }
    (target / "expected.json").write_text(json.dumps(expected) + "\n")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main_())
