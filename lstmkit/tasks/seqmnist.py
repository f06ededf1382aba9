"""Sequential MNIST: `lstmkit train seqmnist --npz FILE --mode rows|pixels|permuted`.

The LSTM reads an image as a sequence (28 rows of 28 pixels, or 784 single pixels, optionally in a
fixed random order) and a linear head classifies the digit from the last hidden state: the whole
image must be remembered through the recurrence, there is no convolution and no attention.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmkit.data.mnist import MODES, load_mnist_npz, permutation_for, to_sequences
from lstmkit import train
from lstmkit.errors import UsageError
from lstmkit.nn.layers import LSTM
from lstmkit.train_config import add_training_args

NAME = "seqmnist"
HELP = "classify MNIST digits read as a sequence of rows or pixels (.npz with x_train, y_train, x_test, y_test)"


class SequenceClassifier(nn.Module):
    """(B, T, I) sequences -> (B, classes) logits from the last step's hidden state."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, num_classes: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(sequences)  # (B, T, H)
        return self.head(outputs[:, -1])  # (B, classes)


def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--npz", required=True, help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--mode", choices=MODES, default="rows",
                        help="rows: 28 steps of 28 pixels; pixels: 784 steps; permuted: 784 in a fixed random order")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--valid-size", type=int, default=5000, help="training images held out for validation")
    parser.add_argument("--limit-train", type=int, default=0, help="use only the first N training images (0: all)")
    parser.add_argument("--limit-test", type=int, default=0, help="score only the first N test images (0: all)")
    add_training_args(parser, out=Path("runs/seqmnist"), epochs=5, batch_size=128, lr=2e-3,
                      lr_schedule="cosine", clip=1.0)


def accuracy(model: nn.Module, sequences: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(sequences[start:start + batch_size])
            correct += int((logits.argmax(-1) == labels[start:start + batch_size]).sum())
    return correct / max(1, len(labels))


def _data(args):
    for name in ("hidden_size", "num_layers"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    arrays = load_mnist_npz(args.npz)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if args.limit_train:
        x_train, y_train = x_train[: args.limit_train], y_train[: args.limit_train]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if args.limit_test:
        x_test, y_test = x_test[: args.limit_test], y_test[: args.limit_test]
    if not 0 < args.valid_size < len(x_train):
        raise UsageError(f"--valid-size {args.valid_size} must leave training images (there are {len(x_train)})")
    permutation = permutation_for(args.mode, x_train.shape[1] * x_train.shape[2], args.seed)
    cut = len(x_train) - args.valid_size  # the last images are the validation part
    sequences = {
        "train": (to_sequences(x_train[:cut], args.mode, permutation), torch.from_numpy(y_train[:cut].astype(np.int64))),
        "valid": (to_sequences(x_train[cut:], args.mode, permutation), torch.from_numpy(y_train[cut:].astype(np.int64))),
        "test": (to_sequences(x_test, args.mode, permutation), torch.from_numpy(y_test.astype(np.int64))),
    }
    return sequences, permutation


def _batches(sequences, labels, batch_size, generator=None):
    order = torch.randperm(len(labels), generator=generator) if generator is not None else torch.arange(len(labels))
    return [(sequences[index], labels[index]) for index in order.split(batch_size)]


def _step(model, batch, state):
    sequences, labels = batch  # (B, T, I), (B,)
    logits = model(sequences)  # (B, 10)
    loss = nn.functional.cross_entropy(logits, labels)
    return train.StepOutput(loss, metrics={"acc": (logits.argmax(-1) == labels).float().mean()}, size=len(labels))


def build_classifier(config: dict) -> SequenceClassifier:
    return SequenceClassifier(config["input_size"], config["hidden_size"], config["num_layers"], 10,
                              config["dropout"])


def train_main(args) -> int:
    config = train.config_from_args(args)
    train.setup(config)
    sequences, permutation = _data(args)
    x_train, y_train = sequences["train"]  # (N, T, I), (N,)
    model_config = {"mode": args.mode, "input_size": x_train.size(-1), "hidden_size": args.hidden_size,
                    "num_layers": args.num_layers, "dropout": args.dropout, "steps": x_train.size(1)}
    model = build_classifier(model_config)
    print(f"seqmnist {args.mode}: {len(y_train):,} training sequences of {x_train.size(1)} steps x "
          f"{x_train.size(2)}; {sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
    result = train.fit(train.TrainSpec(
        task=NAME, model=model, model_config=model_config, step=_step,
        train_batches=lambda epoch: _batches(x_train, y_train, config.batch_size,
                                             train.epoch_generator(config.seed, epoch)),
        valid_batches=_batches(*sequences["valid"], 1000), monitor="acc", lower_is_better=False,
        # the pixel order is part of the model: without it a permuted model reads noise
        extras={"permutation": permutation.tolist()} if permutation is not None else {}), config)
    model = result.model.cpu()  # the best-on-validation weights
    test_accuracy = accuracy(model, *sequences["test"])
    summary = {"test_accuracy": test_accuracy, "best_epoch": result.best_epoch,
               "valid_accuracy": result.best_metrics.get("acc"), "history": result.history}
    (Path(args.out) / "test_metrics.json").write_text(json.dumps(summary, indent=1))
    print(f"test accuracy {test_accuracy:.4f} ({len(sequences['test'][1]):,} images; best epoch "
          f"{result.best_epoch}/{result.epochs_run}); checkpoint: {result.best_dir}")
    return 0
