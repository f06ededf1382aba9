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
            "--no-progress", "--no-baseline", "--bag-buckets", "4096"]
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
    config.update(task="sentiment", format_version=99)
    (other / "config.json").write_text(json.dumps(config))
    assert main(["predict", "sentiment", "--model", str(other), "hello"]) == 2
    assert "format version 99" in capsys.readouterr().err


def test_pretraining_lowers_lm_loss_and_classifier_starts_from_it(tmp_path, monkeypatch, capsys):
    """--pretrain-epochs: the LM loss falls, the classifier's fit starts from the pretrained
    embedding and LSTM (the very weights the LM ended with), its head is untouched by
    pretraining, and the checkpoint stays a plain classifier that predict loads."""
    import torch
    from lstmkit import training

    train_file = write_fasttext(tmp_path / "train.ft.txt", 120, seed=4)
    real_fit, seen = training.fit, {}

    def spying_fit(spec, config):
        if spec.task == "sentiment":  # the classifier's fit: what does it start from?
            seen["start"] = {k: v.clone() for k, v in spec.model.state_dict().items()}
        else:
            seen["init"] = {k: v.clone() for k, v in spec.model.classifier.state_dict().items()}
        result = real_fit(spec, config)
        if spec.task != "sentiment":
            seen["pretrained"] = {k: v.clone() for k, v in
                                  result.model.classifier.state_dict().items()}
        return result

    monkeypatch.setattr(training, "fit", spying_fit)
    out = tmp_path / "run"
    assert main(["train", "sentiment", "--train", str(train_file), "--out", str(out),
                 "--epochs", "1", "--batch-size", "16", "--embedding-dim", "12", "--hidden-size", "8",
                 "--min-freq", "1", "--pretrain-epochs", "3", "--pretrain-lr", "0.02",
                 "--no-progress", "--no-baseline", "--bag-buckets", "4096"]) == 0
    report = json.loads((out / "report.json").read_text())
    pre = report["pretraining"]
    assert pre["valid_loss_after"] < pre["valid_loss_before"] - 0.3
    assert pre["train_loss"][-1] < pre["train_loss"][0]
    assert report["train_seconds"] >= pre["seconds"] and "LM-pretrained" in report["model"]
    init, pretrained, start = seen["init"], seen["pretrained"], seen["start"]
    assert set(start) == set(pretrained)  # LM heads are not part of the classifier
    for name in start:
        assert torch.equal(start[name], pretrained[name]), name
    assert not torch.allclose(pretrained["embedding.weight"], init["embedding.weight"])
    assert any(not torch.allclose(pretrained[k], init[k]) for k in init if k.startswith("lstm."))
    assert torch.equal(pretrained["head.weight"], init["head.weight"])
    capsys.readouterr()
    assert main(["predict", "sentiment", "--model", str(out), "good item"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in {"1", "2"}


def test_amazon_reader_on_shared_data(shared_data):
    from lstmkit.data.readers import read_examples
    examples = read_examples(shared_data / "amazon_reviews" / "test.ft.txt.bz2").examples
    assert len(examples) == 1600 and {e.label for e in examples} == {"1", "2"}


def write_transfer_tsv(path, n, seed):
    """A 'related data set': other words of the same two sentiments, labels neg/pos."""
    rng = random.Random(seed)
    rows = ["sentence\tlabel"]
    for i in range(n):
        positive = i % 2 == 0
        words = rng.choices(FILLER, k=rng.randint(2, 5))
        words.insert(0, rng.choice(["superb", "lovely"] if positive else ["dreadful", "dire"]))
        rows.append(f"{' '.join(words)}\t{'pos' if positive else 'neg'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_pretrain_on_related_labelled_data(tmp_path, monkeypatch, capsys):
    """--pretrain-on: the classifier first learns the related set with its labels read through
    --pretrain-label-map (so 'superb', a word only that file has, already means label 2 when the
    fine-tuning starts from exactly those weights); the report names the phase and its time, and
    sets the bag-of-words baseline beside one fitted with the related texts added."""
    import torch
    from lstmkit import training
    from lstmkit.tasks.sentiment.predict import load

    train_file = write_fasttext(tmp_path / "train.ft.txt", 60, seed=5)
    related = write_transfer_tsv(tmp_path / "related.tsv", 200, seed=6)
    real_fit, seen = training.fit, {}

    def spying_fit(spec, config):
        if spec.task == "sentiment":
            seen["start"] = {k: v.clone() for k, v in spec.model.state_dict().items()}
        result = real_fit(spec, config)
        if spec.task == "sentiment-transfer":
            seen["transferred"] = {k: v.clone() for k, v in result.model.state_dict().items()}
        return result

    monkeypatch.setattr(training, "fit", spying_fit)
    out = tmp_path / "run"
    args = ["train", "sentiment", "--train", str(train_file), "--out", str(out), "--epochs", "1",
            "--batch-size", "16", "--embedding-dim", "12", "--hidden-size", "8", "--min-freq", "1",
            "--lr", "0.02", "--no-progress", "--bag-buckets", "4096", "--test", str(train_file),
            "--pretrain-on", str(related),
            "--pretrain-on-epochs", "4", "--pretrain-on-batch-size", "20"]
    assert main(args[:-6] + ["--pretrain-label-map", "0=1"]) == 2  # without --pretrain-on
    assert "--pretrain-label-map needs --pretrain-on FILE" in capsys.readouterr().err
    assert main(args) == 2  # labels neg/pos are not 1/2: the user must say how they read
    assert "--pretrain-label-map" in capsys.readouterr().err
    assert main(args + ["--pretrain-label-map", "neg=1"]) == 2
    assert "nothing about the label(s) pos" in capsys.readouterr().err
    assert main(args + ["--pretrain-label-map", "neg=1,pos=3"]) == 2
    assert "'3' is not a training label" in capsys.readouterr().err

    assert main(args + ["--pretrain-label-map", "neg=1,pos=2"]) == 0
    report = json.loads((out / "report.json").read_text())
    transfer = report["transfer"]
    assert transfer["examples"] + transfer["held_out"] == 200 and transfer["held_out_acc"] >= 0.9
    assert "pretrained on related.tsv" in report["model"]
    # The linear baseline is also fitted with the related texts added, for a fair comparison.
    assert report["baseline_with_transfer"]["accuracy"] >= 0.8 and "baseline" in report
    assert "+ the --pretrain-on texts" in capsys.readouterr().out
    assert report["train_seconds"] >= transfer["seconds"] > 0
    start = seen["start"]
    for name, value in seen["transferred"].items():
        assert torch.equal(start[name], value), name
    loaded, vocab, labels = load(out)
    model = loaded.model
    model.load_state_dict(start)  # the weights the fine-tuning started from
    ids = torch.tensor([vocab.encode(["superb", "item"]), vocab.encode(["dreadful", "item"])])
    with torch.no_grad():
        predicted = model(ids, torch.tensor([2, 2])).argmax(1).tolist()
    assert [labels.names[i] for i in predicted] == ["2", "1"]


def test_out_defaults_to_runs_sentiment(tmp_path, monkeypatch):
    """Like the other tasks, a run without --out lands in runs/sentiment (and a second one asks
    for --overwrite or --resume instead of mixing two runs)."""
    train_file = write_fasttext(tmp_path / "train.ft.txt", 40, seed=7)
    monkeypatch.chdir(tmp_path)
    args = ["train", "sentiment", "--train", str(train_file), "--epochs", "1", "--batch-size", "16",
            "--embedding-dim", "8", "--hidden-size", "8", "--min-freq", "1", "--no-progress",
            "--bag-buckets", "4096"]
    assert main(args) == 0
    assert (tmp_path / "runs" / "sentiment" / "best").is_dir()
    assert main(args) == 2
