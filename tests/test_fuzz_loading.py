"""Fuzzing (hypothesis) of every reader and of the checkpoint loader: random bytes and mutated valid
files give a clear refusal (UsageError) or a correct result, never another exception. A model that
loads must also run: the loader's checks are what stands between a file and the forward pass."""
from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmkit.cli import main
from lstmkit.data.mnist import load_mnist_npz
from lstmkit.data.readers import read_examples, read_text, read_texts
from lstmkit.data.series import read_series_csv
from lstmkit.errors import UsageError
from lstmkit.tasks import forecast, language_model, sentiment
from lstmkit.tasks.saved_model import load_model
from tiny_runs import train_args, write_data

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """`original` with a few bytes flipped, cut, inserted or deleted."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


def contents(valid: bytes):
    """Random bytes, random text, or a mutation of `valid`."""
    return st.one_of(st.binary(max_size=600), st.text(max_size=300).map(str.encode), mutated(valid))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"))


def in_file(name: str, content: bytes):
    folder = Path(tempfile.mkdtemp())
    path = folder / name
    path.write_bytes(content)
    return folder, path


def read_or_refuse(read, *args):
    """`read(*args)`'s result, or None when it refused with a UsageError (never anything else)."""
    try:
        return read(*args)
    except UsageError:
        return None


# ---- readers --------------------------------------------------------------------------------------

VALID_TABLE = b"text,label\n\"good, really\",1\nbad,0\n"
VALID_JSONL = b'{"text": "good", "label": 1}\n{"text": "bad", "label": "0"}\n'


@pytest.mark.parametrize("name", ["x.txt", "x.csv", "x.tsv", "x.jsonl", "x.txt.gz"])
@FUZZ
@given(draw=st.data())
def test_example_readers_refuse_or_read(name, data, draw):
    valid = {"x.txt": data["sentiment"].read_bytes(), "x.csv": VALID_TABLE, "x.tsv": VALID_TABLE.replace(b",", b"\t"),
             "x.jsonl": VALID_JSONL, "x.txt.gz": gzip.compress(data["sentiment"].read_bytes())}[name]
    folder, path = in_file(name, draw.draw(contents(valid)))
    try:
        result = read_or_refuse(read_examples, path)
        if result is not None:
            assert result.examples and all(e.text.strip() and e.label for e in result.examples)
        if name != "x.txt.gz":
            lines = read_or_refuse(read_texts, path, {"x.txt": "lines", "x.csv": "table", "x.tsv": "table",
                                                      "x.jsonl": "jsonl"}[name])
            assert lines is None or all(e.text.strip() for e in lines)
            text = read_or_refuse(read_text, path)
            assert text is None or text.strip()
    finally:
        shutil.rmtree(folder)


@FUZZ
@given(draw=st.data())
def test_series_reader_refuses_or_reads(data, draw):
    folder, path = in_file("x.csv", draw.draw(contents(data["forecast"].read_bytes()[:600])))
    try:
        series = read_or_refuse(read_series_csv, path, ["sales", "temp"], "interpolate")
        assert series is None or (series.values.shape[1] == 2 and np.isfinite(series.values).all())
    finally:
        shutil.rmtree(folder)


@FUZZ
@given(draw=st.data())
def test_npz_reader_refuses_or_reads(data, draw):
    folder, path = in_file("x.npz", draw.draw(contents(data["seqmnist"].read_bytes())))
    try:
        arrays = read_or_refuse(load_mnist_npz, path)
        if arrays is not None:
            for split in ("train", "test"):
                x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
                assert x.ndim == 3 and len(x) == len(y) > 0 and 0 <= y.min() <= y.max() <= 9
    finally:
        shutil.rmtree(folder)


# ---- checkpoints ----------------------------------------------------------------------------------

KINDS = {"sentiment": sentiment.MODEL, "forecast": forecast.MODEL, "lm": language_model.MODEL}


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for task in KINDS:
        assert main(train_args(task, data, root / task, 1)) == 0
    return root


def json_value():
    return st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) |
                        st.text(max_size=10), lambda inner: st.lists(inner, max_size=4) |
                        st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


@st.composite
def json_mutation(draw, original: bytes) -> bytes:
    """`original` (a JSON object) with one value, at any depth, replaced by random JSON."""
    document = json.loads(original)
    node = document
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if isinstance(node[key], (dict, list)) and node[key] and draw(st.booleans()):
            node = node[key]
            continue
        node[key] = draw(json_value())
        break
    return json.dumps(document).encode()


def runs_forward(task: str, loaded) -> None:
    """The loaded model computes on an input of the shape its config implies."""
    config, model = loaded.config, loaded.model
    with torch.no_grad():
        if task == "sentiment":
            out = model(torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 2]))
            assert out.shape == (2, config.num_classes)
        elif task == "forecast":
            out = model(torch.zeros(1, config.window, len(config.columns)))
            assert out.shape == (1, config.horizon)
        else:
            out, _ = model(torch.zeros(1, 3, dtype=torch.long))
            assert out.shape == (1, 3, config.vocab_size)


@pytest.mark.parametrize("task", list(KINDS))
@FUZZ
@given(draw=st.data())
def test_checkpoint_loader_refuses_or_loads(task, runs, draw):
    folder = Path(tempfile.mkdtemp())
    try:
        checkpoint = folder / "best"
        shutil.copytree(runs / task / "best", checkpoint)
        file = checkpoint / draw.draw(st.sampled_from(sorted(p.name for p in checkpoint.iterdir())))
        original = file.read_bytes()
        strategy = mutated(original) if file.suffix != ".json" else \
            st.one_of(mutated(original), json_mutation(original))
        file.write_bytes(draw.draw(strategy))
        loaded = read_or_refuse(lambda: load_model(checkpoint, KINDS[task]))
        if loaded is not None:
            runs_forward(task, loaded)
    finally:
        shutil.rmtree(folder)


@settings(FUZZ, max_examples=15)
@given(draw=st.data())
def test_resume_refuses_or_continues_from_a_mutated_last_checkpoint(data, runs, draw, capsys):
    folder = Path(tempfile.mkdtemp())
    try:
        run = folder / "run"
        shutil.copytree(runs / "forecast", run)
        last = run / "last"
        file = last / draw.draw(st.sampled_from(sorted(p.name for p in last.iterdir())))
        original = file.read_bytes()
        strategy = mutated(original) if file.suffix != ".json" else \
            st.one_of(mutated(original), json_mutation(original))
        file.write_bytes(draw.draw(strategy))
        capsys.readouterr()
        status = main(train_args("forecast", data, run, 2) + ["--resume"])
        err = capsys.readouterr().err
        assert status == 0 or (status == 2 and "Traceback" not in err and
                               err.splitlines()[-1].startswith("lstmkit train forecast: error:")), err
    finally:
        shutil.rmtree(folder)
