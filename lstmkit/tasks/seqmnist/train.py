"""`lstmkit train seqmnist --npz FILE --mode rows|pixels|permuted`: the LSTM reads an image as 28
rows of 28 pixels, or 784 single pixels, optionally in a fixed random order; the last training
images choose the best epoch, whose test accuracy goes to test_metrics.json."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmkit.data.batching import tensor_batches
from lstmkit.data.mnist import load_mnist_npz, permutation_for, to_sequences
from lstmkit.errors import UsageError
from lstmkit.recipe import to_json
from lstmkit.tasks.evaluation import run_recipe_files
from lstmkit.tasks.seqmnist.config import NAME, TrainRecipe
from lstmkit.tasks.seqmnist.model import accuracy, build_model
from lstmkit.training import StepOutput, TrainSpec, atomic, fit, setup


def _data(recipe: TrainRecipe):
    data, mode, seed = recipe.data, recipe.model.mode, recipe.training.seed
    arrays = load_mnist_npz(data.npz)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if data.limit_train:
        x_train, y_train = x_train[: data.limit_train], y_train[: data.limit_train]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if data.limit_test:
        x_test, y_test = x_test[: data.limit_test], y_test[: data.limit_test]
    if not 0 < data.valid_size < len(x_train):
        raise UsageError(f"--valid-size {data.valid_size} must leave training images (there are {len(x_train)})")
    permutation = permutation_for(mode, x_train.shape[1] * x_train.shape[2], seed)
    cut = len(x_train) - data.valid_size  # the last images are the validation part

    def part(x, y):
        return to_sequences(x, mode, permutation), torch.from_numpy(y.astype(np.int64))

    sequences = {"train": part(x_train[:cut], y_train[:cut]), "valid": part(x_train[cut:], y_train[cut:]),
                 "test": part(x_test, y_test)}
    return sequences, permutation


def _step(model, batch, state):
    sequences, labels = batch  # (B, T, I), (B,)
    logits = model(sequences)  # (B, 10)
    loss = nn.functional.cross_entropy(logits, labels)
    return StepOutput(loss, metrics={"acc": (logits.argmax(-1) == labels).float().mean()}, size=len(labels))


def main(recipe: TrainRecipe) -> int:
    config = recipe.training
    setup(config)
    sequences, permutation = _data(recipe)
    x_train, y_train = sequences["train"]  # (N, T, I), (N,)
    model_config = dataclasses.replace(recipe.model, input_size=x_train.size(-1), steps=x_train.size(1))
    model = build_model(model_config, config.backend)
    print(f"seqmnist {model_config.mode}: {len(y_train):,} training sequences of {x_train.size(1)} "
          f"steps x {x_train.size(2)}; {sum(p.numel() for p in model.parameters()):,} parameters",
          flush=True)
    result = fit(TrainSpec(
        task=NAME, model=model, model_config=to_json(model_config), step=_step,
        train_batches=lambda epoch: tensor_batches((x_train, y_train), config.batch_size,
                                                   seed=config.seed, epoch=epoch, shard=True),
        valid_batches=tensor_batches(sequences["valid"], 1000), monitor="acc", lower_is_better=False,
        # the pixel order is part of the model: without it a permuted model reads noise
        extras={"permutation": permutation.tolist()} if permutation is not None else {},
        final_items=len(sequences["test"][1]), run_files=run_recipe_files(recipe)), config)
    model = result.model.cpu()  # the best-on-validation weights
    test_accuracy = accuracy(model, *sequences["test"])
    summary = {"test_accuracy": test_accuracy, "best_epoch": result.best_epoch,
               "valid_accuracy": result.best_metrics.get("acc"), "history": result.history}
    atomic.write_text(Path(config.out) / "test_metrics.json", json.dumps(summary, indent=1))
    print(f"test accuracy {test_accuracy:.4f} ({len(sequences['test'][1]):,} images; best epoch "
          f"{result.best_epoch}/{result.epochs_run}); checkpoint: {result.best_dir}")
    return 0
