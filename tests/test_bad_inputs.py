"""Every bad input to every command gets one line saying what to fix and exit status 2: no
traceback, no second line, and no existing run folder changed.

The table holds flags out of range, files that are missing, empty, binary, in another encoding or
of another shape, checkpoints damaged or edited so that their parts disagree, run folders that
cannot be written or hold another run, and training settings that make the loss explode. Each case
runs in this process through lstmkit.cli.main (a child process would cost seconds of imports).
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from tiny_runs import TASKS, folder_digest, train_args, write_data

# ---- the trained runs every case may read (and none may change) ---------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    data = write_data(root / "data")
    runs = {task: root / "runs" / task for task in TASKS}
    for task in TASKS:
        assert main(train_args(task, data, runs[task], 1)) == 0
    return {"data": data, "runs": runs, "root": root}


def copy_run(world, tmp: Path, task: str) -> Path:
    copy = tmp / f"copy-{task}"
    shutil.copytree(world["runs"][task], copy)
    return copy


def damaged(task: str, file: str, mutate, where=("best", "last")):
    """A case's setup: a copy of `task`'s run whose `file` in each checkpoint of `where` is changed
    by mutate(path) (a JSON file: mutate(data) -> new data)."""
    def setup(world, tmp):
        run = copy_run(world, tmp, task)
        for checkpoint in where:
            path = run / checkpoint / file
            if file.endswith(".json") and getattr(mutate, "json", False):
                path.write_text(json.dumps(mutate(json.loads(path.read_text()))))
            else:
                mutate(path)
        return run
    return setup


def json_edit(fn):
    fn.json = True
    return fn


def truncated(path):
    path.write_bytes(path.read_bytes()[:60])


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(400))


def bad_header(path):  # a header length pointing far beyond the file
    data = bytearray(path.read_bytes())
    data[:8] = (10**9).to_bytes(8, "little")
    path.write_bytes(bytes(data))


def nan_weights(path):
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].clone().fill_(float("nan"))
    save_file(tensors, str(path))


def removed(path):
    path.unlink()


def text(content: str):
    def write(path):
        path.write_text(content)
    return write


def model_setting(key, value):
    @json_edit
    def edit(config):
        if value is KeyError:
            del config["model"][key]
        else:
            config["model"][key] = value
        return config
    return edit


def top_level(key, value):
    @json_edit
    def edit(config):
        config[key] = value
        return config
    return edit


# ---- bad data files -------------------------------------------------------------------------------

def data_file(name: str, content: bytes | str):
    def setup(world, tmp):
        path = tmp / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path
    return setup


def series_csv(rows: int = 160, edit=None):
    """A CSV like the tiny series, `edit(lines)` changing its lines."""
    def setup(world, tmp):
        lines = world["data"]["forecast"].read_text().splitlines()[: rows + 1]
        path = tmp / "series.csv"
        path.write_text("\n".join(edit(lines) if edit else lines) + "\n")
        return path
    return setup


def set_value(row: int, value: str):
    def edit(lines):
        cells = lines[row].split(",")
        cells[1] = value
        lines[row] = ",".join(cells)
        return lines
    return edit


def npz(**changes):
    def setup(world, tmp):
        with np.load(world["data"]["seqmnist"]) as archive:
            arrays = {k: archive[k] for k in archive.files}
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value(arrays[key]) if callable(value) else value
        path = tmp / "digits.npz"
        np.savez(path, **arrays)
        return path
    return setup


def with_nan(x):
    x = x.astype(np.float32) / 255
    x[0, 0, 0] = np.nan
    return x


def a_file(world, tmp):
    path = tmp / "a-file"
    path.write_text("x")
    return path


def read_only_folder(world, tmp):
    path = tmp / "read-only"
    path.mkdir()
    path.chmod(0o500)
    return path


def latin1_text(world, tmp):
    path = tmp / "latin.txt"
    path.write_bytes("__label__1 caf\xe9 cr\xe8me\n__label__2 bon\n".encode("latin-1"))
    return path


def one_class_folder(world, tmp):
    root = tmp / "texts"
    (root / "pos").mkdir(parents=True)
    (root / "pos" / "1.txt").write_text("good")
    return root


# ---- the cases -----------------------------------------------------------------------------------
# (id, argv with {placeholders}, setups {placeholder: setup(world, tmp) -> path}, words the message
# must hold). {data:TASK} and {run:TASK} are the shared data and runs; {out} a fresh folder.

TRAINING_FLAGS = [
    ("epochs-0", ["--epochs", "0"], "--epochs"), ("epochs-text", ["--epochs", "x"], "--epochs"),
    ("lr-0", ["--lr", "0"], "--lr"), ("lr-negative", ["--lr", "-1"], "--lr"),
    ("lr-text", ["--lr", "fast"], "--lr"), ("batch-size-0", ["--batch-size", "0"], "--batch-size"),
    ("optimizer", ["--optimizer", "rmsprop"], "--optimizer"),
    ("weight-decay", ["--weight-decay", "-1"], "--weight-decay"), ("clip", ["--clip", "-1"], "--clip"),
    ("schedule", ["--lr-schedule", "linear"], "--lr-schedule"),
    ("lr-decay-0", ["--lr-decay", "0"], "--lr-decay"), ("lr-step-0", ["--lr-step", "0"], "--lr-step"),
    ("min-lr", ["--min-lr", "-1"], "--min-lr"), ("warmup", ["--warmup-steps", "-1"], "--warmup-steps"),
    ("patience-0", ["--patience", "0"], "--patience"), ("device", ["--device", "tpu"], "--device"),
    ("backend", ["--backend", "nonsense"], "--backend"),
    ("max-batches-0", ["--max-batches", "0"], "--max-batches"),
    ("unknown-flag", ["--colour", "red"], "unrecognized"),
    ("resume-nothing", ["--resume"], "no checkpoint"),
    ("out-under-file", ["--out", "{file}/x"], "cannot write"),
    ("out-is-file", ["--out", "{file}"], "cannot write"),
    ("out-proc", ["--out", "/proc/lstmkit-x"], "cannot write"),
    ("out-holds-run", ["--out", "{run}"], "already holds"),
    ("lr-explodes", ["--lr", "1e10"], "diverged"),
]
if not torch.cuda.is_available():
    TRAINING_FLAGS += [("device-cuda", ["--device", "cuda"], "CUDA"), ("amp-on-cpu", ["--amp"], "CUDA")]
if hasattr(os, "geteuid") and os.geteuid() != 0:  # permissions do not stop root
    TRAINING_FLAGS += [("out-read-only", ["--out", "{read_only}/x"], "cannot write")]

WEIGHTS_DAMAGE = [  # (id, file, mutate, words the message must hold)
    ("weights-truncated", "model.safetensors", truncated, "damaged"),
    ("weights-random", "model.safetensors", random_bytes, "damaged"),
    ("weights-bad-header", "model.safetensors", bad_header, "damaged"),
    ("weights-nan", "model.safetensors", nan_weights, "NaN"),
    ("weights-missing", "model.safetensors", removed, "missing"),
]
RESUME_DAMAGE = WEIGHTS_DAMAGE + [
    ("trainer-json-broken", "trainer.json", text("{broken"), "trainer.json"),
    ("trainer-json-list", "trainer.json", text("[1, 2]"), "trainer.json"),
    ("trainer-json-empty", "trainer.json", text("{}"), "training state"),
    ("trainer-tensors-truncated", "trainer.safetensors", truncated, "trainer.safetensors"),
    ("trainer-tensors-missing", "trainer.safetensors", removed, "trainer.safetensors"),
    ("config-broken", "config.json", text("{"), "config.json"),
    ("config-other-version", "config.json", top_level("format_version", 99), "version 99"),
]


def train_cases():
    cases = []
    for task in TASKS:
        for name, flags, words in TRAINING_FLAGS:
            setups = {"file": a_file, "run": lambda w, tmp, task=task: copy_run(w, tmp, task),
                      "read_only": read_only_folder}
            cases.append((f"train-{task}-{name}", [*_train(task), *flags], setups, words))
        for name, file, mutate, words in RESUME_DAMAGE:
            cases.append((f"train-{task}-resume-{name}", [*_train(task), "--out", "{run}", "--resume"],
                          {"run": damaged(task, file, mutate, ("last",))}, words))
        cases.append((f"train-{task}-resume-other-settings",
                      [*_train(task), "--out", "{run}", "--resume", "--hidden-size", "9"],
                      {"run": lambda w, tmp, task=task: copy_run(w, tmp, task)}, "other model settings"))
        cases.append((f"train-{task}-resume-other-training",
                      [*_train(task), "--out", "{run}", "--resume", "--batch-size", "7"],
                      {"run": lambda w, tmp, task=task: copy_run(w, tmp, task)},
                      "other training settings"))
        other = TASKS[(TASKS.index(task) + 1) % len(TASKS)]
        cases.append((f"train-{task}-resume-other-task", [*_train(task), "--out", "{run}", "--resume"],
                      {"run": lambda w, tmp, other=other: copy_run(w, tmp, other)}, "not"))
    return cases


def _train(task):
    """The tiny training command of `task` on the shared data, into {out}."""
    return train_args(task, {t: Path("{data:%s}" % t) for t in TASKS}, Path("{out}"), 1)


SENTIMENT = [
    ("train-missing", ["--train", "{tmp}/nothing.txt"], {}, "no such file"),
    ("train-empty", ["--train", "{f}"], {"f": data_file("empty.txt", "")}, "no examples"),
    ("train-binary", ["--train", "{f}"], {"f": data_file("bin.txt", bytes(range(256)) * 4)}, "bin.txt"),
    ("train-invalid-utf8", ["--train", "{f}"], {"f": data_file("u.txt", bytes(range(128, 256)) * 4)},
     "UTF-8"),
    ("train-latin1", ["--train", "{f}"], {"f": latin1_text}, "UTF-8"),
    ("train-no-label", ["--train", "{f}"], {"f": data_file("x.txt", "no label here\n")}, "__label__"),
    ("train-one-label", ["--train", "{f}"], {"f": data_file("x.txt", "__label__1 a b\n" * 20)},
     "two classes"),
    ("train-one-folder", ["--train", "{f}"], {"f": one_class_folder}, "sub-folder per class"),
    ("train-huge-line", ["--train", "{f}"], {"f": data_file("x.txt", "word " * 300000 + "\n")},
     "__label__"),
    ("format", ["--format", "xml"], {}, "--format"),
    ("table-no-text-column", ["--train", "{f}"], {"f": data_file("x.csv", "a,b\n1,2\n")}, "text column"),
    ("text-column-unknown", ["--train", "{f}", "--text-column", "body2"],
     {"f": data_file("x.csv", "text,label\ngood,1\nbad,0\n")}, "body2"),
    ("valid-missing", ["--valid", "{tmp}/nothing.txt"], {}, "no such file"),
    ("test-unknown-label", ["--test", "{f}"], {"f": data_file("t.txt", "__label__7 good\n")}, "label '7'"),
    ("valid-fraction-1", ["--valid-fraction", "1"], {}, "--valid-fraction"),
    ("valid-fraction-negative", ["--valid-fraction", "-0.1"], {}, "--valid-fraction"),
    ("min-freq-0", ["--min-freq", "0"], {}, "--min-freq"),
    ("max-vocab-1", ["--max-vocab", "1"], {}, "--max-vocab"),
    ("embedding-dim-0", ["--embedding-dim", "0"], {}, "--embedding-dim"),
    ("hidden-size-0", ["--hidden-size", "0"], {}, "--hidden-size"),
    ("layers-0", ["--layers", "0"], {}, "--layers"),
    ("num-layers-negative", ["--num-layers", "-1"], {}, "--num-layers"),
    ("dropout-2", ["--dropout", "2"], {}, "--dropout"),
    ("dropout-negative", ["--dropout", "-0.1"], {}, "--dropout"),
    ("embedding-dropout-1", ["--embedding-dropout", "1"], {}, "--embedding-dropout"),
    ("pooling", ["--pooling", "sum"], {}, "--pooling"),
    ("ngram-buckets-negative", ["--ngram-buckets", "-1"], {}, "--ngram-buckets"),
    ("max-len-0", ["--max-len", "0"], {}, "--max-len"),
    ("max-len-negative", ["--max-len", "-1"], {}, "--max-len"),
    ("ensemble-0", ["--ensemble", "0"], {}, "--ensemble"),
    ("pretrain-epochs-negative", ["--pretrain-epochs", "-1"], {}, "--pretrain-epochs"),
    ("pretrain-lr-0", ["--pretrain-lr", "0"], {}, "--pretrain-lr"),
    ("pretrain-dropout-1", ["--pretrain-dropout", "1"], {}, "--pretrain-dropout"),
    ("pretrain-on-missing", ["--pretrain-on", "{tmp}/nothing.txt"], {}, "no such file"),
    ("label-map-alone", ["--pretrain-label-map", "0=1"], {}, "--pretrain-on"),
    ("label-map-malformed", ["--pretrain-on", "{data:sentiment}", "--pretrain-label-map", "1"], {},
     "--pretrain-label-map"),
    ("pretrain-on-epochs-0", ["--pretrain-on-epochs", "0"], {}, "--pretrain-on-epochs"),
    ("ngram-weight-decay", ["--ngram-weight-decay", "-1"], {}, "--ngram-weight-decay"),
]

FORECAST = [
    ("csv-missing", ["--csv", "{tmp}/nothing.csv"], {}, "not found"),
    ("csv-empty", ["--csv", "{f}"], {"f": data_file("x.csv", "")}, "empty"),
    ("csv-header-only", ["--csv", "{f}"], {"f": data_file("x.csv", "month,sales,temp\n")}, "no data rows"),
    ("csv-latin1", ["--csv", "{f}"], {"f": data_file("x.csv", "month,sales\n1,caf\xe9\n".encode("latin-1"))},
     "UTF-8"),
    ("csv-nul", ["--csv", "{f}"], {"f": data_file("x.csv", b"month,sales,temp\n1,\x00,2\n")}, "x.csv"),
    ("csv-binary", ["--csv", "{f}"], {"f": data_file("x.csv", bytes(range(256)) * 8)}, "x.csv"),
    ("target-unknown", ["--target", "price"], {}, "price"),
    ("features-unknown", ["--features", "rain"], {}, "rain"),
    ("cell-not-number", ["--csv", "{f}"], {"f": series_csv(edit=set_value(5, "abc"))}, "not a number"),
    ("cell-infinite", ["--csv", "{f}"], {"f": series_csv(edit=set_value(5, "inf"))}, "finite"),
    ("value-1e308", ["--csv", "{f}"], {"f": series_csv(edit=set_value(5, "1e308"))}, "too large"),
    ("value-far-out", ["--csv", "{f}"], {"f": series_csv(edit=set_value(158, "1e300"))}, "range"),
    ("gap-refused", ["--csv", "{f}"], {"f": series_csv(edit=set_value(5, ""))}, "--missing"),
    ("missing-policy", ["--missing", "guess"], {}, "--missing"),
    ("too-few-rows", ["--csv", "{f}"], {"f": series_csv(rows=20)}, "too few"),
    ("window-0", ["--window", "0"], {}, "--window"), ("horizon-0", ["--horizon", "0"], {}, "--horizon"),
    ("season-0", ["--season", "0"], {}, "--season"),
    ("seasonal-without-season", ["--baseline", "seasonal"], {}, "--season"),
    ("baseline", ["--baseline", "mean"], {}, "--baseline"),
    ("season-too-long", ["--season", "200", "--window", "12"], {}, "--season"),
    ("valid-fraction-1", ["--valid-fraction", "1"], {}, "--valid-fraction"),
    ("fractions-sum", ["--valid-fraction", "0.5", "--test-fraction", "0.6"], {}, "fraction"),
    ("log-of-negative", ["--csv", "{f}", "--log"], {"f": series_csv(edit=set_value(5, "-3"))}, "--log"),
    ("hidden-size-0", ["--hidden-size", "0"], {}, "--hidden-size"),
    ("num-layers-0", ["--num-layers", "0"], {}, "--num-layers"),
    ("dropout-1", ["--dropout", "1"], {}, "--dropout"),
]

LM = [
    ("text-missing", ["--text", "{tmp}/nothing.txt"], {}, "not found"),
    ("text-empty", ["--text", "{f}"], {"f": data_file("x.txt", "   \n")}, "empty"),
    ("text-latin1", ["--text", "{f}"], {"f": data_file("x.txt", "caf\xe9 " .encode("latin-1") * 200)},
     "UTF-8"),
    ("text-too-short", ["--text", "{f}"], {"f": data_file("x.txt", "abc")}, "too few"),
    ("valid-text-new-char", ["--valid-text", "{f}"], {"f": data_file("v.txt", "zzz\u00e9\u00e9 qqq" * 20)},
     "never saw"),
    ("test-text-missing", ["--test-text", "{tmp}/nothing.txt"], {}, "not found"),
    ("level", ["--level", "byte"], {}, "--level"),
    ("adaptive-char", ["--softmax", "adaptive"], {}, "word level"),
    ("bptt-0", ["--bptt", "0"], {}, "--bptt"),
    ("chunks-negative", ["--chunks-per-epoch", "-1"], {}, "--chunks-per-epoch"),
    ("max-minutes-0", ["--max-minutes", "0"], {}, "--max-minutes"),
    ("max-minutes-negative", ["--max-minutes", "-1"], {}, "--max-minutes"),
    ("valid-fraction-0", ["--valid-fraction", "-0.5"], {}, "--valid-fraction"),
    ("embedding-dim-0", ["--embedding-dim", "0"], {}, "--embedding-dim"),
    ("dropout-negative", ["--dropout", "-0.5"], {}, "--dropout"),
    ("cutoffs-text", ["--cutoffs", "a,b"], {}, "--cutoffs"),
    ("tie-weights-sizes", ["--tie-weights", "--embedding-dim", "8"], {}, "--tie-weights"),
]

SEQMNIST = [
    ("npz-missing", ["--npz", "{tmp}/nothing.npz"], {}, "not found"),
    ("npz-empty", ["--npz", "{f}"], {"f": data_file("x.npz", b"")}, "x.npz"),
    ("npz-random", ["--npz", "{f}"], {"f": data_file("x.npz", np.random.default_rng(1).bytes(999))}, "x.npz"),
    ("npz-pickle", ["--npz", "{f}"], {"f": data_file("x.npz", pickle.dumps({"x_train": [1]}))}, "pickled"),
    ("npz-zip-damaged", ["--npz", "{f}"], {"f": data_file("x.npz", b"PK\x03\x04" + bytes(300))}, "x.npz"),
    ("npz-missing-key", ["--npz", "{f}"], {"f": npz(y_test=None)}, "y_test"),
    ("npz-nan-pixels", ["--npz", "{f}"], {"f": npz(x_train=with_nan)}, "NaN"),
    ("npz-object-array", ["--npz", "{f}"], {"f": npz(x_test=np.array([{"a": 1}], dtype=object))}, "pickled"),
    ("npz-label-10", ["--npz", "{f}"], {"f": npz(y_train=lambda y: y + 10)}, "0..9"),
    ("npz-float-labels", ["--npz", "{f}"], {"f": npz(y_train=lambda y: y + 0.5)}, "whole numbers"),
    ("npz-no-images", ["--npz", "{f}"], {"f": npz(x_test=np.zeros((0, 8, 8), np.uint8),
                                                  y_test=np.zeros(0, np.int64))}, "no images"),
    ("npz-shapes", ["--npz", "{f}"], {"f": npz(y_train=lambda y: y[:5])}, "do not match"),
    ("npz-text-pixels", ["--npz", "{f}"], {"f": npz(x_train=lambda x: x.astype(str))}, "numeric"),
    ("valid-size-0", ["--valid-size", "0"], {}, "--valid-size"),
    ("valid-size-all", ["--valid-size", "999"], {}, "--valid-size"),
    ("limit-train-negative", ["--limit-train", "-5"], {}, "--limit-train"),
    ("limit-test-negative", ["--limit-test", "-1"], {}, "--limit-test"),
    ("mode", ["--mode", "columns"], {}, "--mode"),
    ("hidden-size-0", ["--hidden-size", "0"], {}, "--hidden-size"),
]


def task_cases():
    cases = []
    for task, table in (("sentiment", SENTIMENT), ("forecast", FORECAST), ("lm", LM), ("seqmnist", SEQMNIST)):
        for name, flags, setups, words in table:
            cases.append((f"train-{task}-{name}", [*_train(task), *flags], setups, words))
    return cases


CHECKPOINT_DAMAGE = WEIGHTS_DAMAGE + [  # applied to best/
    ("config-broken", "config.json", text("{not json"), "config.json"),
    ("config-list", "config.json", text("[]"), "not an lstmkit checkpoint"),
    ("config-deep", "config.json", text("[" * 100000), "config.json"),
    ("config-binary", "config.json", random_bytes, "config.json"),
    ("config-version", "config.json", top_level("format_version", 99), "version 99"),
    ("config-version-true", "config.json", top_level("format_version", True), "version true"),
    ("config-task-list", "config.json", top_level("task", ["x"]), "'task'"),
    ("config-model-list", "config.json", top_level("model", [1]), "'model'"),
    ("config-extras-path", "config.json", top_level("extras", ["../../etc/passwd"]), "extra"),
    ("hidden-size-text", "config.json", model_setting("hidden_size", "big"), "hidden_size"),
    ("hidden-size-edited", "config.json", model_setting("hidden_size", 9), "shape"),
    ("hidden-size-zero", "config.json", model_setting("hidden_size", 0), "--hidden-size"),
    ("hidden-size-removed", "config.json", model_setting("hidden_size", KeyError), "shape"),
    ("unknown-setting", "config.json", model_setting("colour", "red"), "colour"),
    ("num-layers-float", "config.json", model_setting("num_layers", 1.5), "num_layers"),
]
EXTRAS_DAMAGE = {
    "sentiment": [
        ("vocab-cut", "vocab.json", json_edit(lambda v: {**v, "tokens": v["tokens"][:5]}), "vocab_size"),
        ("vocab-broken", "vocab.json", text("{"), "vocab.json"),
        ("vocab-duplicates", "vocab.json", json_edit(lambda v: {**v, "tokens": v["tokens"][:-1] + ["<pad>"]}),
         "twice"),
        ("vocab-not-tokens", "vocab.json", text('{"tokens": [1, 2]}'), "vocab.json"),
        ("vocab-missing", "vocab.json", removed, "vocab.json"),
        ("labels-three", "labels.json", text('{"names": ["a", "b", "c"]}'), "num_classes"),
        ("labels-one", "labels.json", text('{"names": ["a"]}'), "labels.json"),
        ("vocab-size-edited", "config.json", model_setting("vocab_size", 5), "vocab_size"),
        ("num-classes-edited", "config.json", model_setting("num_classes", 3), "num_classes"),
        ("max-len-text", "config.json", model_setting("max_len", "x"), "max_len"),
        ("pooling-unknown", "config.json", model_setting("pooling", "sum"), "pooling"),
    ],
    "forecast": [
        ("scaler-std-0", "scaler.json", text('{"mean": [1, 2], "std": [0, 1]}'), "scaler"),
        ("scaler-infinite", "scaler.json", text('{"mean": [Infinity, 1], "std": [1, 1]}'), "scaler"),
        ("scaler-short", "scaler.json", text('{"mean": [1], "std": [1]}'), "scaler.json"),
        ("scaler-text", "scaler.json", text('{"mean": "a", "std": "b"}'), "scaler.json"),
        ("columns-edited", "config.json", model_setting("columns", ["sales"]), "columns"),
        ("columns-twice", "config.json", model_setting("columns", ["sales", "sales"]), "columns"),
        ("window-negative", "config.json", model_setting("window", -5), "--window"),
        ("window-text", "config.json", model_setting("window", "24"), "window"),
        ("season-beyond-window", "config.json", model_setting("baseline", "seasonal"), "--season"),
    ],
    "lm": [
        ("vocab-cut", "vocab.json", json_edit(lambda v: {**v, "tokens": v["tokens"][:5]}), "vocab_size"),
        ("vocab-not-dict", "vocab.json", text("[1]"), "vocab.json"),
        ("embedding-null", "config.json", model_setting("embedding_dim", None), "embedding_dim"),
        ("level-unknown", "config.json", model_setting("level", "byte"), "level"),
        ("cutoffs-text", "config.json", model_setting("cutoffs", "a"), "cutoffs"),
    ],
}


def checkpoint_cases():
    commands = {"sentiment": ["predict", "sentiment", "--model", "{run}", "good"],
                "forecast": ["predict", "forecast", "--model", "{run}", "--csv", "{data:forecast}"],
                "lm": ["generate", "--model", "{run}", "--length", "5"]}
    cases = []
    for task, argv in commands.items():
        for name, file, mutate, words in CHECKPOINT_DAMAGE + EXTRAS_DAMAGE[task]:
            cases.append((f"{argv[0]}-{task}-{name}", argv, {"run": damaged(task, file, mutate, ("best",))},
                          words))
        cases.append((f"{argv[0]}-{task}-no-model", [*argv[:argv.index("{run}")], "{tmp}/nothing",
                                                      *argv[argv.index("{run}") + 1:]], {}, "no checkpoint"))
        other = "sentiment" if task != "sentiment" else "forecast"
        cases.append((f"{argv[0]}-{task}-other-task", argv,
                      {"run": lambda w, tmp, other=other: copy_run(w, tmp, other)}, "task"))
        cases.append((f"{argv[0]}-{task}-empty-folder", argv,
                      {"run": lambda w, tmp: (tmp / "empty").mkdir() or tmp / "empty"}, "no checkpoint"))
    return cases


SENTIMENT_PREDICT = ["predict", "sentiment", "--model", "{run:sentiment}"]
FORECAST_PREDICT = ["predict", "forecast", "--model", "{run:forecast}"]
GENERATE = ["generate", "--model", "{run:lm}"]
VIEW = ["view", "--model", "{run:lm}", "--out", "{tmp}/view.html"]
USE_CASES = [
    ("predict-sentiment-texts-and-file", [*SENTIMENT_PREDICT, "good", "--file", "{data:sentiment}"], {},
     "not both"),
    ("predict-sentiment-file-missing", [*SENTIMENT_PREDICT, "--file", "{tmp}/nothing.txt"], {}, "no such file"),
    ("predict-sentiment-file-latin1", [*SENTIMENT_PREDICT, "--file", "{f}"], {"f": latin1_text}, "UTF-8"),
    ("predict-sentiment-file-binary", [*SENTIMENT_PREDICT, "--file", "{f}"],
     {"f": data_file("b.txt", bytes(range(128, 256)) * 3)}, "UTF-8"),
    ("predict-sentiment-format", [*SENTIMENT_PREDICT, "--format", "xml", "good"], {}, "--format"),
    ("predict-sentiment-table-column", [*SENTIMENT_PREDICT, "--file", "{f}", "--format", "table",
                                        "--text-column", "body"], {"f": data_file("t.csv", "a\nb\n")}, "body"),
    ("predict-sentiment-blank-texts", [*SENTIMENT_PREDICT, " ", "  "], {}, "no texts"),
    ("predict-sentiment-device", [*SENTIMENT_PREDICT, "--device", "tpu", "good"], {}, "--device"),
    ("predict-sentiment-backend", [*SENTIMENT_PREDICT, "--backend", "gpu9", "good"], {}, "--backend"),
    ("predict-sentiment-huge-argument", [*SENTIMENT_PREDICT, "good", "--bogus-" + "x" * 200000], {},
     "unrecognized"),
    ("predict-sentiment-huge-header", [*SENTIMENT_PREDICT, "--file", "{f}", "--format", "table"],
     {"f": data_file("h.csv", ",".join(f"c{i}" for i in range(300_000)) + "\nx\n")}, "--text-column"),
    ("predict-sentiment-no-model-flag", ["predict", "sentiment", "good"], {}, "--model"),
    ("predict-forecast-csv-missing", [*FORECAST_PREDICT, "--csv", "{tmp}/nothing.csv"], {}, "not found"),
    ("predict-forecast-too-short", [*FORECAST_PREDICT, "--csv", "{f}"], {"f": series_csv(rows=5)}, "--window"),
    ("predict-forecast-column-missing", [*FORECAST_PREDICT, "--csv", "{f}"],
     {"f": data_file("x.csv", "month,sales\n" + "m,1\n" * 30)}, "temp"),
    ("predict-forecast-gap", [*FORECAST_PREDICT, "--csv", "{f}"], {"f": series_csv(edit=set_value(150, ""))},
     "--missing"),
    ("predict-forecast-missing-policy", [*FORECAST_PREDICT, "--csv", "{data:forecast}", "--missing", "x"], {},
     "--missing"),
    ("predict-forecast-far-out", [*FORECAST_PREDICT, "--csv", "{f}"],
     {"f": series_csv(edit=set_value(159, "1e306"))}, "range"),
    ("predict-forecast-latin1", [*FORECAST_PREDICT, "--csv", "{f}"],
     {"f": data_file("x.csv", "month,sales\n1,caf\xe9\n".encode("latin-1"))}, "UTF-8"),
    ("generate-length-negative", [*GENERATE, "--length", "-1"], {}, "--length"),
    ("generate-temperature-negative", [*GENERATE, "--temperature", "-1"], {}, "--temperature"),
    ("generate-top-k-negative", [*GENERATE, "--top-k", "-1"], {}, "--top-k"),
    ("generate-prime-unseen", [*GENERATE, "--prime", "\u00e9\u00e9\u00e9"], {}, "never saw"),
    ("generate-seed-text", [*GENERATE, "--seed", "x"], {}, "--seed"),
    ("generate-no-model", ["generate"], {}, "--model"),
    ("view-no-model", [*VIEW[:1], "--model", "{tmp}/nothing", "--text", "hi"], {}, "no checkpoint"),
    ("view-damaged", [*VIEW[:1], "--model", "{run}", "--text", "hi"],
     {"run": damaged("lm", "model.safetensors", truncated, ("best",))}, "damaged"),
    ("view-empty-text", [*VIEW, "--text", " "], {}, "empty"),
    ("view-file-missing", [*VIEW, "--file", "{tmp}/nothing.txt"], {}, "not found"),
    ("view-file-latin1", [*VIEW, "--file", "{f}"], {"f": latin1_text}, "UTF-8"),
    ("view-max-mb-0", [*VIEW, "--text", "the", "--max-mb", "0"], {}, "--max-mb"),
    ("view-out-folder", [*VIEW[:4], "{tmp}", "--text", "the"], {}, "folder"),
    ("view-probe-regex", [*VIEW, "--text", "the fox", "--probe", "(("], {}, "probe"),
    ("view-forecaster-text", ["view", "--model", "{run:forecast}", "--text", "hi"], {}, "CSV"),
    ("view-no-input", VIEW, {}, "--text"),
    ("view-seqmnist", ["view", "--model", "{run:seqmnist}", "--text", "hi"], {}, "seqmnist"),
]

EXPORT = ["export", "--model", "{run:forecast}"]
EXPORT_CASES = [
    ("export-no-model", ["export", "--model", "{tmp}/nothing", "--out", "{tmp}/m.onnx"], {}, "no checkpoint"),
    ("export-damaged", ["export", "--model", "{run}", "--out", "{tmp}/m.pt2"],
     {"run": damaged("forecast", "model.safetensors", truncated, ("best",))}, "damaged"),
    ("export-edited", ["export", "--model", "{run}", "--out", "{tmp}/m.pt2"],
     {"run": damaged("sentiment", "labels.json", text('{"names": ["a", "b", "c"]}'), ("best",))},
     "num_classes"),
    ("export-suffix", [*EXPORT, "--out", "{tmp}/m.zip"], {}, "--format"),
    ("export-format", [*EXPORT, "--out", "{tmp}/m.onnx", "--format", "tflite"], {}, "--format"),
    ("export-format-suffix", [*EXPORT, "--out", "{tmp}/m.onnx", "--format", "pt2"], {}, ".pt2"),
    ("export-out-folder-missing", [*EXPORT, "--out", "{tmp}/no/m.pt2"], {}, "does not exist"),
    ("export-no-out", EXPORT, {}, "--out"),
    ("predict-onnx-random", ["predict", "sentiment", "--model", "{f}", "good"],
     {"f": data_file("m.onnx", np.random.default_rng(2).bytes(500))}, "m.onnx"),
    ("predict-pt2-random", ["predict", "forecast", "--model", "{f}", "--csv", "{data:forecast}"],
     {"f": data_file("m.pt2", np.random.default_rng(3).bytes(500))}, "m.pt2"),
    ("generate-pt2-empty", ["generate", "--model", "{f}"], {"f": data_file("m.pt2", b"")}, "m.pt2"),
]

OTHER_COMMANDS = [
    ("no-such-command", ["fly"], {}, "invalid choice"),
    ("unknown-top-flag", ["--colour"], {}, "unrecognized"),
    ("train-no-task", ["train", "poetry"], {}, "invalid choice"),
    ("selfcheck-flag", ["selfcheck", "--fast"], {}, "unrecognized"),
    ("bench-batch-0", ["bench", "--batch", "0"], {}, "--batch"),
    ("bench-hidden-0", ["bench", "--hidden", "0"], {}, "--hidden"),
    ("bench-steps-0", ["bench", "--steps", "0"], {}, "--steps"),
    ("bench-repeats-0", ["bench", "--repeats", "0"], {}, "--repeats"),
    ("bench-batch-text", ["bench", "--batch", "x"], {}, "--batch"),
    ("bench-backend", ["bench", "--backend", "fast"], {}, "--backend"),
    ("bench-native-layer-norm", ["bench", "--backend", "native", "--layer-norm"], {}, "layer_norm"),
    ("bench-too-big", ["bench", "--batch", "100000", "--hidden", "100000", "--steps", "100000"], {},
     "memory"),
    ("experiment-unknown", ["experiment", "juggling"], {}, "juggling"),
    ("experiment-none", ["experiment"], {}, "required"),
    ("experiment-lengths-cliff", ["experiment", "cliff", "--lengths", "5,10"], {}, "--lengths"),
    ("experiment-lengths-text", ["experiment", "adding", "--lengths", "a"], {}, "--lengths"),
    ("experiment-lengths-negative", ["experiment", "copy", "--lengths", "-3"], {}, "--lengths"),
    ("experiment-threads-0", ["experiment", "cliff", "--threads", "0"], {}, "--threads"),
    ("experiment-seed-negative", ["experiment", "cliff", "--seed", "-1"], {}, "--seed"),
    ("experiment-species-0", ["experiment", "cliff", "--species", "0"], {}, "--species"),
    ("experiment-pets-0", ["experiment", "gates", "--pets", "0"], {}, "--pets"),
    ("experiment-distances-negative", ["experiment", "cliff", "--distances", "-1"], {}, "--distances"),
    ("experiment-out-under-file", ["experiment", "cliff", "--quick", "--out", "{file}/x"],
     {"file": a_file}, "cannot write"),
    ("experiment-out-proc", ["experiment", "adding", "--quick", "--out", "/proc/lstmkit-x"], {},
     "cannot write"),
    ("demo-threads-0", ["demo", "--threads", "0"], {}, "--threads"),
    ("demo-seed-text", ["demo", "--seed", "x"], {}, "--seed"),
    ("demo-species-0", ["demo", "--species", "0"], {}, "--species"),
    ("demo-distances-text", ["demo", "--distances", "a,b"], {}, "--distances"),
    ("demo-out-proc", ["demo", "--quick", "--out", "/proc/lstmkit-x"], {}, "cannot write"),
    ("demo-flag", ["demo", "--fast"], {}, "unrecognized"),
]

CASES = train_cases() + task_cases() + checkpoint_cases() + USE_CASES + EXPORT_CASES + OTHER_COMMANDS


def test_the_table_is_large_and_its_names_unique():
    assert len(CASES) >= 200
    assert len({case[0] for case in CASES}) == len(CASES)


def _fill(argv, world, tmp, made):
    values = {**{f"data:{t}": str(p) for t, p in world["data"].items()},
              **{f"run:{t}": str(p) for t, p in world["runs"].items()},
              "out": str(tmp / "out"), "tmp": str(tmp), **{k: str(v) for k, v in made.items()}}
    filled = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        filled.append(arg)
    return filled


def _prefix(argv) -> str:
    """How the refusal of `argv` starts: the command (and task) it names when they are valid."""
    from lstmkit.cli import COMMANDS
    from lstmkit.tasks import TASKS as TASK_PACKAGES
    words = ["lstmkit"]
    if argv and argv[0] in {c.__name__.rsplit(".", 1)[1] for c in COMMANDS}:
        words.append(argv[0])
        if argv[0] in ("train", "predict") and len(argv) > 1 and argv[1] in TASK_PACKAGES:
            words.append(argv[1])
    return " ".join(words) + ("" if len(words) > 1 else ":")


@pytest.mark.parametrize("name,argv,setups,words", CASES, ids=[case[0] for case in CASES])
def test_bad_input_gets_one_line_and_exit_2(name, argv, setups, words, world, tmp_path, capsys,
                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # any default --out lands here, not in the repository
    made = {key: setup(world, tmp_path) for key, setup in setups.items()}
    argv = _fill(argv, world, tmp_path, made)
    folders = [world["root"] / "runs"] + [p for p in made.values() if Path(p).is_dir()]
    before = {str(folder): folder_digest(folder) for folder in folders}
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"exit {status}: {err[-3000:]}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr: {err[-3000:]}"
    assert "Traceback" not in err and len(lines[0]) < 800, lines[0][:3000]
    assert lines[0].startswith(_prefix(argv)), lines[0]
    assert words in lines[0], f"{words!r} not in: {lines[0]}"
    after = {str(folder): folder_digest(folder) for folder in folders}
    assert after == before, "a run folder changed"


def test_finished_runs_hold_no_lock_file(world):
    """A run that ended removed its lock file (its folder holds only what the run wrote)."""
    assert sorted(os.listdir(world["root"] / "runs")) == sorted(TASKS)
    assert not list((world["root"] / "runs").rglob(".lstmkit.lock"))
