"""`lstmkit train sentiment --ensemble K`: members, the saved ensemble, predicting, resuming."""
import json
import shutil

import torch

from lstmkit.cli import main
from lstmkit.tasks.sentiment.model import SentimentClassifier, SentimentEnsemble
from lstmkit.tasks.sentiment.predict import load
from test_sentiment import write_fasttext, write_transfer_tsv


def test_ensemble_returns_log_of_mean_probabilities():
    torch.manual_seed(0)
    members = [SentimentClassifier(30, 3, embedding_dim=6, hidden_size=5) for _ in range(3)]
    ensemble = SentimentEnsemble(members).eval()
    ids, lengths = torch.randint(1, 30, (4, 7)), torch.tensor([7, 3, 5, 1])
    with torch.no_grad():
        mean = torch.stack([torch.softmax(m(ids, lengths), 1) for m in members]).mean(0)
        got = ensemble(ids, lengths)
    torch.testing.assert_close(got.exp(), mean)
    torch.testing.assert_close(torch.softmax(got, 1), mean)  # usable as logits


def _args(train_file, out, *extra):
    return ["train", "sentiment", "--train", str(train_file), "--test", str(train_file),
            "--out", str(out), "--epochs", "2", "--batch-size", "16", "--embedding-dim", "12",
            "--hidden-size", "8", "--min-freq", "1", "--lr", "0.02", "--no-progress",
            "--no-baseline", "--bag-buckets", "0", "--ensemble", "2", *extra]


def _weights(directory):
    return load(directory)[0].model.state_dict()


def test_train_save_predict_and_resume_an_ensemble(tmp_path, capsys):
    train_file = write_fasttext(tmp_path / "train.ft.txt", 80, seed=3)
    related = write_transfer_tsv(tmp_path / "related.tsv", 60, seed=6)
    # A transfer phase first, so the members' shared start is not just the seeded initialisation.
    transfer = ["--pretrain-on", str(related), "--pretrain-label-map", "neg=1,pos=2",
                "--pretrain-on-epochs", "1"]
    out = tmp_path / "run"
    assert main(_args(train_file, out, *transfer)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"].endswith("ensemble of 2")
    assert [m["seed"] for m in report["members"]] == [0, 1]
    assert report["epochs_run"] == 4 and len(report["best_epoch"]) == 2
    assert "ensemble of 2 (best epochs" in capsys.readouterr().out

    # best/ holds both members; its prediction is the mean of theirs.
    loaded, vocab, labels = load(out)
    ensemble = loaded.model
    assert isinstance(ensemble, SentimentEnsemble) and len(ensemble.members) == 2
    members = [load(out / "members" / k)[0].model for k in "12"]
    for member, saved in zip(members, ensemble.members):
        for name, value in member.state_dict().items():
            assert torch.equal(saved.state_dict()[name], value), name
    assert not torch.equal(members[0].head.weight, members[1].head.weight)  # seeds differ
    ids = torch.tensor([vocab.encode(["great", "book"]), vocab.encode(["awful", "item"])])
    lengths = torch.tensor([2, 2])
    with torch.no_grad():
        mean = torch.stack([torch.softmax(m(ids, lengths), 1) for m in members]).mean(0)
        torch.testing.assert_close(torch.softmax(ensemble(ids, lengths), 1), mean)
    assert main(["predict", "sentiment", "--model", str(out), "--json", "great book"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert abs(printed["probability"] - mean[0].max().item()) < 1e-4

    # Killed before member 2 started: --resume trains it from the shared start, leaves member 1
    # alone, and ends with the same ensemble as the uninterrupted run.
    finished = _weights(out)
    member1_metrics = (out / "members" / "1" / "metrics.jsonl").read_text()
    shutil.rmtree(out / "members" / "2")
    shutil.rmtree(out / "best")
    assert main(_args(train_file, out, *transfer, "--resume")) == 0
    assert (out / "members" / "1" / "metrics.jsonl").read_text() == member1_metrics
    resumed = _weights(out)
    for name, value in finished.items():
        assert torch.equal(resumed[name], value), name


def test_ensemble_run_folders_are_not_mixed(tmp_path, capsys):
    train_file = write_fasttext(tmp_path / "train.ft.txt", 40, seed=4)
    single, out = tmp_path / "single", tmp_path / "ens"
    one_model = _args(train_file, single)[:-2]  # without "--ensemble 2"
    assert main(one_model) == 0
    # An ensemble cannot resume a one-model run, nor be written over one without --overwrite.
    assert main(_args(train_file, single, "--resume")) == 2
    assert "holds no ensemble" in capsys.readouterr().err
    assert main(_args(train_file, single)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(_args(train_file, single, "--overwrite")) == 0  # the one-model run's files go
    assert not (single / "last").exists() and not (single / "metrics.jsonl").exists()
    assert main(_args(train_file, out)) == 0
    assert main(_args(train_file, out)) == 2  # a second ensemble run into the same folder
    one_model_here = [a if a != str(single) else str(out) for a in one_model]
    assert main(one_model_here) == 2  # nor a one-model run
    assert main(one_model_here + ["--overwrite"]) == 0
    assert not (out / "members").exists()  # the old ensemble's parts are gone
    assert main(_args(train_file, out, "--ensemble", "0")) == 2
    assert "--ensemble must be >= 1" in capsys.readouterr().err
