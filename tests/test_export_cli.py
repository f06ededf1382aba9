"""`lstmkit export` for every task, and `predict`/`generate` running the exported file: the same
predictions as the checkpoint, with onnxruntime (.onnx) and with torch (.pt2)."""
from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

from lstmkit.cli import main
from small_models import series_file, trained_runs

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'lstmkit[onnx]')")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def sentiment_files(runs, tmp_path_factory):
    """The small sentiment model exported once as ONNX and as .pt2 (checked by `export` itself)."""
    folder = tmp_path_factory.mktemp("exported")
    files = {fmt: folder / f"sentiment.{fmt}" for fmt in ("onnx", "pt2")}
    for path in files.values():
        assert main(["export", "--model", str(runs["sentiment"]), "--out", str(path)]) == 0
    return files


def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def export(capsys, run_folder, path):
    status, out, err = run(capsys, "export", "--model", run_folder, "--out", path)
    assert status == 0, err
    assert path.is_file() and "gives the model's outputs within" in out
    return path


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_sentiment_predicts_the_same_from_the_exported_file(runs, sentiment_files, capsys, fmt):
    exported = sentiment_files[fmt]
    texts = ["the cat sat on a mat", "no", "we go and said yes yes yes the mat"]
    _, want, _ = run(capsys, "predict", "sentiment", "--model", runs["sentiment"], "--json", *texts)
    status, got, err = run(capsys, "predict", "sentiment", "--model", exported, "--json", *texts)
    assert status == 0, err
    for a, b in zip(map(json.loads, got.splitlines()), map(json.loads, want.splitlines()), strict=True):
        assert a["label"] == b["label"] and a["text"] == b["text"]
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in b["probabilities"]) < 1e-5


def test_language_model_generates_the_same_from_the_exported_step(runs, tmp_path, capsys):
    exported = export(capsys, runs["lm"], tmp_path / "lm.onnx")
    for flags in (["--temperature", "0"], ["--seed", "4", "--top-k", "5"]):
        argv = ["--prime", 'we "go', "--length", "40", *flags]
        _, want, _ = run(capsys, "generate", "--model", runs["lm"], *argv)
        status, got, err = run(capsys, "generate", "--model", exported, *argv)
        assert status == 0, err
        assert got == want and len(got) > 40


def test_forecaster_predicts_the_same_from_the_exported_file(runs, tmp_path, capsys):
    exported = export(capsys, runs["forecast"], tmp_path / "forecast.onnx")
    csv = series_file(tmp_path)
    _, want, _ = run(capsys, "predict", "forecast", "--model", runs["forecast"], "--csv", csv)
    status, got, err = run(capsys, "predict", "forecast", "--model", exported, "--csv", csv)
    assert status == 0, err
    rows = [(a.split(","), b.split(",")) for a, b in zip(got.splitlines(), want.splitlines(), strict=True)]
    assert rows[0][0] == rows[0][1]                                    # the header
    for a, b in rows[1:]:
        assert a[0] == b[0] and abs(float(a[1]) - float(b[1])) <= 1e-5 * max(1.0, abs(float(b[1])))


def test_sequence_classifier_exports(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (60, 28, 28)).astype(np.uint8), rng.integers(0, 10, 60).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=images[:40], y_train=labels[:40], x_test=images[40:], y_test=labels[40:])
    assert main(["train", "seqmnist", "--npz", str(tmp_path / "d.npz"), "--hidden-size", "8", "--epochs", "1",
                 "--valid-size", "10", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    export(capsys, tmp_path / "run", tmp_path / "digits.onnx")


def test_export_refusals_are_one_line(runs, sentiment_files, tmp_path, capsys, monkeypatch):
    cases = [
        (["export", "--model", runs["sentiment"], "--out", tmp_path / "model.txt"], "ends neither in .onnx nor .pt2"),
        (["export", "--model", runs["sentiment"], "--out", tmp_path / "model.pt2", "--format", "onnx"], "ends in .onnx"),
        (["export", "--model", runs["sentiment"], "--out", tmp_path / "no" / "m.onnx"], "does not exist"),
        (["export", "--model", tmp_path / "nothing", "--out", tmp_path / "m.onnx"], "nothing"),
        (["predict", "forecast", "--model", sentiment_files["pt2"], "--csv", series_file(tmp_path)],
         "holds a sentiment model, not a forecast model"),
    ]
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    cases.append((["predict", "sentiment", "--model", tmp_path / "junk.onnx", "hi"], "onnxruntime cannot read it"))
    for argv, message in cases:
        status, out, err = run(capsys, *argv)
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    status, _, err = run(capsys, "predict", "sentiment", "--model", sentiment_files["onnx"], "hi")
    assert status == 2 and "pip install 'lstmkit[onnx]'" in err and len(err.strip().splitlines()) == 1
