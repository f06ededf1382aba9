"""Sequential MNIST: npz checks, the three reading orders, and a tiny training run."""
import json

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.mnist import load_mnist_npz, permutation_for, to_sequences
from lstmkit.errors import UsageError


def bar_digits(count, seed):
    """28x28 uint8 images whose label k is a bright vertical bar at columns 2k+4..2k+6 from row 4 down
    rows, over dim noise: every row the LSTM reads carries the label, so a few epochs learn it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)  # (N, H, W) dim noise
    for i, k in enumerate(labels):
        images[i, 4:, 2 * k + 4: 2 * k + 7] = 255
    return images, labels.astype(np.uint8)


@pytest.fixture
def npz_file(tmp_path):
    x_train, y_train = bar_digits(400, 0)
    x_test, y_test = bar_digits(100, 1)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_reading_orders():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)  # (N, H, W)
    rows = to_sequences(images, "rows")
    assert rows.shape == (2, 28, 28) and rows.dtype == torch.float32
    assert rows[0, 1, 0] == pytest.approx(28 / 255)  # step 1 is the second row
    pixels = to_sequences(images, "pixels")
    assert pixels.shape == (2, 784, 1) and torch.equal(pixels[:, :, 0], rows.reshape(2, 784))
    order = permutation_for("permuted", 784, seed=5)
    assert sorted(order.tolist()) == list(range(784))
    assert np.array_equal(order, permutation_for("permuted", 784, seed=5))  # fixed by the seed
    permuted = to_sequences(images, "permuted", order)
    assert torch.equal(permuted[:, :, 0], pixels[:, order, 0])
    assert permutation_for("pixels", 784, seed=5) is None


def test_npz_problems_are_named(tmp_path):
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 28, 28)), y_train=np.zeros(2))
    with pytest.raises(UsageError, match="lacks key\\(s\\) x_test, y_test"):
        load_mnist_npz(tmp_path / "partial.npz")
    np.savez(tmp_path / "labels.npz", x_train=np.zeros((2, 28, 28)), y_train=np.array([0, 12]),
             x_test=np.zeros((1, 784)), y_test=np.array([1]))
    with pytest.raises(UsageError, match="labels 0..12; expected 0..9"):
        load_mnist_npz(tmp_path / "labels.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UsageError, match="not a readable .npz file"):
        load_mnist_npz(tmp_path / "text.npz")
    with pytest.raises(UsageError, match="npz file not found"):
        load_mnist_npz(tmp_path / "none.npz")


def test_rows_training_learns_and_scores_test(npz_file, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "seqmnist", "--npz", str(npz_file), "--mode", "rows", "--hidden-size", "24",
            "--epochs", "6", "--lr", "0.02", "--batch-size", "16", "--valid-size", "100", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    summary = json.loads((out / "test_metrics.json").read_text())
    assert summary["test_accuracy"] >= 0.8  # chance is 0.1
    assert "test accuracy" in capsys.readouterr().out


def test_permuted_mode_saves_its_pixel_order(npz_file, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "seqmnist", "--npz", str(npz_file), "--mode", "permuted", "--hidden-size", "4",
            "--epochs", "1", "--max-batches", "2", "--limit-train", "200", "--limit-test", "20",
            "--valid-size", "20", "--seed", "9", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    saved = json.loads((out / "best" / "permutation.json").read_text())
    assert saved == permutation_for("permuted", 784, seed=9).tolist()


def test_bad_npz_exits_2(tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 28, 28)))
    assert main(["train", "seqmnist", "--npz", str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "lacks key(s)" in err and len(err.strip().splitlines()) == 1


def test_mnist_shared_data(shared_data):
    arrays = load_mnist_npz(shared_data / "mnist" / "mnist.npz")
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["y_test"].shape == (10000,)
