"""Two ways to start the sentiment classifier from more than its own labelled texts.

1. Language-model pretraining (`--pretrain-epochs`, semi-supervised sequence learning: Dai & Le
   2015, ULMFiT): the embedding and LSTM first learn to predict the words of the training texts
   (labels unused); see sentiment_model.PretrainingLM.
2. Transfer from a related labelled data set (`--pretrain-on FILE`): the whole classifier is first
   trained on, say, SST-2's 60,000 labelled movie-review phrases, then fine-tuned on the task's own
   texts. Its labels are read as the task's labels (`--pretrain-label-map`), so the classifier head
   carries over too: on the Amazon reviews a run with a fresh head was 4 points behind after three
   epochs (84.1 % vs 88.2 % test), its random start sending large gradients into the pretrained LSTM.

Both keep the epoch with the best held-out score and return a summary for the report; their whole
wall time counts as training time.
"""
from __future__ import annotations

import dataclasses
import sys
import time

import torch
import torch.nn.functional as F

from lstmkit import train
from lstmkit.data.batching import make_batches
from lstmkit.data.text import LabelSet
from lstmkit.errors import UsageError
from lstmkit.tasks.sentiment_model import PretrainingLM, SentimentClassifier

NAME = "sentiment"


def _pretrain_config(config: train.TrainConfig, epochs: int, lr: float | None) -> train.TrainConfig:
    """The run's settings for a pretraining phase: no checkpoint folder, no early stopping, no
    resume, a constant learning rate (the schedule belongs to the fine-tuning)."""
    return dataclasses.replace(config, out=None, epochs=epochs, lr=lr or config.lr, patience=None,
                               resume=False, lr_schedule="constant", warmup_steps=0)


def shuffled_batches(sequences, labels, batch_size: int, seed: int):
    """Epoch -> that epoch's shuffled batches, the order a function of (seed, epoch) only, as
    train.fit needs. The pretraining phases pass seeds of their own (apart from the classifier's)."""
    def batches(epoch):
        generator = train.epoch_generator(seed, epoch)
        return make_batches(sequences, labels, batch_size, shuffle=True, generator=generator)
    return batches


# ---- 1. language-model pretraining --------------------------------------------------------------

def _lm_step(model, batch, state):
    return train.StepOutput(model(batch.ids, batch.lengths), size=int(batch.lengths.sum()))


def pretrain_language_model(model: SentimentClassifier, train_sequences, valid_sequences,
                            config: train.TrainConfig, epochs: int, lr: float | None,
                            dropout: float) -> dict:
    """Train `model`'s embedding and LSTM in place as a language model on the texts (no labels);
    keeps the epoch with the lowest validation loss. Returns losses and wall time for the report."""
    started = time.perf_counter()
    lm = PretrainingLM(model, dropout)
    valid_batches = make_batches(valid_sequences, None, 256)
    device = train.select_device(config.device)
    before = train.evaluate_batches(lm.to(device), valid_batches, _lm_step, device)["loss"]
    print(f"pretraining the embedding and LSTM as a language model for {epochs} epoch(s); "
          f"valid loss {before:.4f} nats/word", file=sys.stderr)
    batches = shuffled_batches(train_sequences, None, config.batch_size, config.seed + 104729)
    result = train.fit(train.TrainSpec(task=NAME + "-lm", model=lm, model_config={},
                                       train_batches=batches, step=_lm_step,
                                       valid_batches=valid_batches),
                       _pretrain_config(config, epochs, lr))
    return {"epochs": epochs, "valid_loss_before": before,
            "valid_loss_after": result.best_metrics["loss"], "best_epoch": result.best_epoch,
            "train_loss": [round(r["train_loss"], 4) for r in result.history],
            "seconds": round(time.perf_counter() - started, 1)}


# ---- 2. transfer from a related labelled data set -----------------------------------------------

def label_map(spec: str | None, source_names, target: LabelSet, source_file) -> dict[str, int]:
    """How each label of the pretraining file reads as a class of the task.

    spec "0=1,1=2" maps the pretraining label 0 to the task's label 1, and so on; without a spec
    the names must be the task's own. Every label present in the pretraining file needs a target.
    """
    source_names = sorted(set(source_names))
    if spec is None:
        unknown = [name for name in source_names if name not in target.index]
        if unknown:
            raise UsageError(
                f"{source_file}: labels {', '.join(source_names)} are not the training labels "
                f"({', '.join(target.names)}); say how they read with --pretrain-label-map, e.g. "
                f"'{','.join(f'{s}={t}' for s, t in zip(source_names, target.names))}'")
        return {name: target.index[name] for name in source_names}
    mapping = {}
    for pair in spec.split(","):
        source, sep, destination = (part.strip() for part in pair.partition("="))
        if not sep or not source or not destination:
            raise UsageError(f"--pretrain-label-map {spec!r}: expected SOURCE=TARGET pairs joined "
                             f"by commas, e.g. '0=1,1=2'")
        if destination not in target.index:
            raise UsageError(f"--pretrain-label-map: {destination!r} is not a training label "
                             f"(known: {', '.join(target.names)})")
        mapping[source] = target.index[destination]
    missing = [name for name in source_names if name not in mapping]
    if missing:
        raise UsageError(f"--pretrain-label-map says nothing about the label(s) {', '.join(missing)} "
                         f"found in {source_file}")
    return mapping


def classifier_step(model, batch, state):
    """The classifier's training step: cross-entropy and accuracy (transfer and fine-tuning alike)."""
    logits = model(batch.ids, batch.lengths)  # (B, C)
    return train.StepOutput(F.cross_entropy(logits, batch.labels),
                            metrics={"acc": (logits.argmax(1) == batch.labels).float().mean()},
                            size=len(batch))


def pretrain_on_labelled(model: SentimentClassifier, sequences: list[list[int]], labels: list[int],
                         config: train.TrainConfig, epochs: int, batch_size: int | None,
                         source: str) -> dict:
    """Train the whole classifier in place on a related labelled data set (labels already mapped to
    the task's classes). A seeded twentieth is held out; the epoch with its best accuracy is kept."""
    started = time.perf_counter()
    order = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(config.seed + 31))
    cut = max(1, len(sequences) // 20)
    held, kept = order[:cut].tolist(), order[cut:].tolist()
    if not kept:
        raise UsageError(f"{source}: {len(sequences)} example(s) are too few to pretrain on")
    pick = lambda items, idx: [items[i] for i in idx]  # noqa: E731
    config = dataclasses.replace(config, batch_size=batch_size or config.batch_size)
    print(f"pretraining the classifier on {len(kept)} labelled texts from {source} for {epochs} "
          f"epoch(s)", file=sys.stderr)
    result = train.fit(train.TrainSpec(
        task=NAME + "-transfer", model=model, model_config={},
        train_batches=shuffled_batches(pick(sequences, kept), pick(labels, kept), config.batch_size,
                                       config.seed + 7907),
        step=classifier_step, valid_batches=make_batches(pick(sequences, held), pick(labels, held), 256),
        monitor="acc", lower_is_better=False), _pretrain_config(config, epochs, None))
    return {"source": source, "examples": len(kept), "held_out": len(held), "epochs": epochs,
            "best_epoch": result.best_epoch, "held_out_acc": round(result.best_metrics["acc"], 4),
            "seconds": round(time.perf_counter() - started, 1)}
