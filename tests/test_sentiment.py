"""Sentiment task end to end on tiny synthetic data: train, report, predict, bad input, checkpoints."""
import json
import random

import pytest

from lstmkit.cli import main

POSITIVE = ["good", "great", "love", "excellent", "fine"]
NEGATIVE = ["bad", "awful", "hate", "poor", "broken"]
FILLER = ["the", "a", "book", "it", "was", "this", "item", "really", "and", "very"]


def write_fasttext(path, n, seed):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.choices(FILLER, k=rng.randint(2, 6))
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if positive else NEGATIVE))
        lines.append(f"__label__{2 if positive else 1} {' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    train = write_fasttext(root / "train.ft.txt", 160, seed=1)
    test = write_fasttext(root / "test.ft.txt", 40, seed=2)
    out = root / "run"
    status = main(["train", "sentiment", "--train", str(train), "--test", str(test), "--out", str(out),
                   "--epochs", "5", "--batch-size", "16", "--embedding-dim", "16", "--hidden-size", "16",
                   "--lr", "0.03", "--dropout", "0.1", "--min-freq", "1", "--no-progress"])
    assert status == 0
    return root, out


def test_train_reports_accuracy_f1_and_baseline(trained):
    _, out = trained
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["1", "2"]
    assert report["test"]["n"] == 40 and report["test"]["accuracy"] >= 0.9
    assert 0.9 <= report["test"]["f1"] <= 1.0
    assert report["baseline"]["accuracy"] >= 0.9
    assert (out / "best" / "vocab.json").is_file() and (out / "metrics.jsonl").is_file()


def test_predict_texts_file_and_json(trained, tmp_path, capsys):
    _, out = trained
    capsys.readouterr()
    assert main(["predict", "sentiment", "--model", str(out), "this was great and i love it",
                 "awful broken item"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    labels = [line.split("\t")[0] for line in lines]
    probabilities = [float(line.split("\t")[1]) for line in lines]
    assert labels == ["2", "1"] and all(0.5 < p <= 1 for p in probabilities)
    texts = tmp_path / "texts.txt"
    texts.write_text("really good book\n\nvery poor item\n")
    assert main(["predict", "sentiment", "--model", str(out / "best"), "--file", str(texts), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["label"] for r in records] == ["2", "1"]
    assert abs(sum(records[0]["probabilities"].values()) - 1) < 1e-5


def test_bad_training_file_exits_2_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.ft.txt"
    bad.write_text("__label__1 fine text\nthis line has no label\n__label__2 ok\n")
    argv = ["train", "sentiment", "--train", str(bad), "--out", str(tmp_path / "o"), "--epochs", "1",
            "--no-progress", "--no-baseline"]
    assert main(argv) == 2
    assert f"{bad}:2: expected '__label__X text'" in capsys.readouterr().err
    # Skipping is explicit and reported.
    bad.write_text("\n".join(["__label__1 bad thing", "__label__2 good thing"] * 10 + ["junk"]) + "\n")
    assert main(argv + ["--skip-bad", "--min-freq", "1", "--hidden-size", "4",
                        "--embedding-dim", "4"]) == 0
    assert "skipped 1 bad line(s)" in capsys.readouterr().err


def test_unknown_test_label_and_unknown_column(tmp_path, capsys):
    train = write_fasttext(tmp_path / "train.ft.txt", 40, seed=3)
    test = tmp_path / "test.ft.txt"
    test.write_text("__label__1 bad\n__label__7 what\n")
    assert main(["train", "sentiment", "--train", str(train), "--test", str(test), "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    assert f"{test}:2: label '7' never appears" in capsys.readouterr().err
    table = tmp_path / "t.csv"
    table.write_text("text,label\ngood,1\n")
    assert main(["train", "sentiment", "--train", str(table), "--label-column", "stars", "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    assert "unknown label column 'stars'" in capsys.readouterr().err


def test_predict_refuses_other_task_and_version(trained, tmp_path, capsys):
    _, out = trained
    import shutil
    other = tmp_path / "other"
    shutil.copytree(out / "best", other)
    config = json.loads((other / "config.json").read_text())
    config["task"] = "lm"
    (other / "config.json").write_text(json.dumps(config))
    assert main(["predict", "sentiment", "--model", str(other), "hello"]) == 2
    assert "checkpoint of task 'lm', not 'sentiment'" in capsys.readouterr().err
    config.update(task="sentiment", format_version=2)
    (other / "config.json").write_text(json.dumps(config))
    assert main(["predict", "sentiment", "--model", str(other), "hello"]) == 2
    assert "format version 2" in capsys.readouterr().err


def test_amazon_reader_on_shared_data(shared_data):
    from lstmkit.data.readers import read_examples
    examples = read_examples(shared_data / "amazon_reviews" / "test.ft.txt.bz2").examples
    assert len(examples) == 1600 and {e.label for e in examples} == {"1", "2"}
