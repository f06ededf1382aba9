"""Two ways to start the sentiment classifier from more than its own labelled texts.

1. Language-model pretraining (`--pretrain-epochs`, semi-supervised sequence learning: Dai & Le
   2015, ULMFiT): the classifier's own embedding and LSTM first learn to predict the words of the
   training texts (labels unused), the forward direction the next word and the backward direction
   the previous one (each direction only reads its own side, so nothing leaks); the classifier then
   starts from those weights. The language model's output layers are dropped afterwards:
   checkpoints hold the classifier only (`PretrainingLM`).
2. Transfer from a related labelled data set (`--pretrain-on FILE`): the whole classifier is first
   trained on, say, SST-2's 60,000 labelled movie-review phrases, then fine-tuned on the task's own
   texts. Its labels are read as the task's labels (`--pretrain-label-map`), so the classifier head
   carries over too: a fresh head's random start sends large gradients into the pretrained LSTM
   (docs/training.md has the measurement).

Both keep the epoch with the best held-out score and return a summary for the report; their whole
wall time counts as training time.
"""
from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn

from lstmkit.data.batching import text_batches
from lstmkit.data.labels import LabelSet
from lstmkit.errors import UsageError
from lstmkit.tasks.sentiment.config import NAME
from lstmkit.tasks.sentiment.model import SentimentClassifier
from lstmkit import training
from lstmkit.training import StepOutput, TrainConfig, TrainSpec, evaluate_batches, select_device
from lstmkit.training.budget import Budget


def lm_cutoffs(vocab_size: int) -> list[int]:
    """Adaptive-softmax clusters for a frequency-sorted vocabulary (frequent words first)."""
    return [c for c in (500, 3000) if c < vocab_size - 1]


class PretrainingLM(nn.Module):
    """A language model around a SentimentClassifier's embedding and LSTM (shared, not copied).

    ids (B, T), lengths (B,) -> mean nats per predicted word. The forward direction's output at t
    predicts word t+1, the backward direction's output at t predicts word t-1 (one adaptive
    softmax per direction: Grave et al. 2017, cheap on a 20k-word vocabulary).
    """

    def __init__(self, classifier: SentimentClassifier, dropout: float = 0.1):
        super().__init__()
        self.classifier = classifier
        lstm = classifier.lstm
        self.directions = 2 if lstm.bidirectional else 1
        vocab_size = classifier.embedding.num_embeddings
        self.hidden_size = lstm.proj_size or lstm.hidden_size
        self.dropout = nn.Dropout(dropout)
        cutoffs = lm_cutoffs(vocab_size)  # none for a small vocabulary: a full softmax
        self.heads = nn.ModuleList(
            nn.AdaptiveLogSoftmaxWithLoss(self.hidden_size, vocab_size, cutoffs, div_value=4.0)
            if cutoffs else nn.Linear(self.hidden_size, vocab_size) for _ in range(self.directions))

    def _loss(self, head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if isinstance(head, nn.Linear):
            return nn.functional.cross_entropy(head(hidden), targets)
        return head(hidden, targets).loss

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ids, lengths = self.classifier.lstm_part(ids, lengths)  # the text the LSTM reads
        y, _ = self.classifier.encode(ids, lengths)  # (B, T', dirs*H), T' = the padded length
        y = self.dropout(y)
        ids = ids[:, :y.shape[1]]
        lengths = lengths.to(y.device)
        # Pairs (t, t+1) inside each text: forward predicts t+1 from t, backward t from t+1.
        pairs = (torch.arange(1, y.shape[1], device=y.device)[None, :] < lengths[:, None])  # (B, T'-1)
        if not bool(pairs.any()):  # only one-word texts: nothing to predict
            return y.sum() * 0.0
        H = self.hidden_size
        losses = [self._loss(self.heads[0], y[:, :-1, :H][pairs], ids[:, 1:][pairs])]
        if self.directions == 2:
            losses.append(self._loss(self.heads[1], y[:, 1:, H:][pairs], ids[:, :-1][pairs]))
        return sum(losses) / len(losses)


def _pretrain_config(config: TrainConfig, epochs: int, lr: float | None) -> TrainConfig:
    """The run's settings for a pretraining phase: no checkpoint folder, no early stopping, no
    resume, a constant learning rate (the schedule belongs to the fine-tuning)."""
    return dataclasses.replace(config, out=None, epochs=epochs, lr=lr or config.lr, patience=None,
                               resume=False, lr_schedule="constant", warmup_steps=0)


def shuffled_batches(sequences, labels, batch_size: int, seed: int):
    """Epoch -> that epoch's shuffled batches, the order a function of (seed, epoch) only, as
    fit needs. The pretraining phases pass seeds of their own (apart from the classifier's)."""
    return lambda epoch: text_batches(sequences, labels, batch_size, seed=seed, epoch=epoch,
                                      shard=True)


# ---- 1. language-model pretraining --------------------------------------------------------------

def _lm_step(model, batch, state):
    return StepOutput(model(batch.ids, batch.lengths), size=int(batch.lengths.sum()))


def pretrain_language_model(model: SentimentClassifier, train_sequences, valid_sequences,
                            config: TrainConfig, epochs: int, lr: float | None,
                            dropout: float, budget: Budget | None = None) -> dict:
    """Train `model`'s embedding and LSTM in place as a language model on the texts (no labels),
    within `budget`; keeps the epoch with the lowest validation loss. Returns losses and wall
    time for the report."""
    started = time.perf_counter()
    lm = PretrainingLM(model, dropout)
    valid_batches = list(text_batches(valid_sequences, None, 256))
    device = select_device(config.device)
    before = evaluate_batches(lm.to(device), valid_batches, _lm_step, device)["loss"]
    print(f"pretraining the embedding and LSTM as a language model on {len(train_sequences):,} "
          f"texts for {epochs} epoch(s); valid loss {before:.4f} nats/word", flush=True)
    batches = shuffled_batches(train_sequences, None, config.batch_size, config.seed + 104729)
    result = training.fit(TrainSpec(task=NAME + "-lm", model=lm, model_config={}, train_batches=batches,
                                    step=_lm_step, valid_batches=valid_batches, budget=budget),
                          _pretrain_config(config, epochs, lr))
    return {"epochs": epochs, "valid_loss_before": before,
            "valid_loss_after": result.best_metrics["loss"], "best_epoch": result.best_epoch,
            "train_loss": [round(r["train_loss"], 4) for r in result.history],
            "stopped_by_budget": result.stopped_by_budget,
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


def classifier_step(model, batch, state, bag_offsets: torch.Tensor | None = None):
    """The classifier's training step: cross-entropy and accuracy (transfer and fine-tuning alike).
    `bag_offsets` (N, C): the fitted bag's cross-fitted logits of the training texts, by position."""
    if bag_offsets is not None:
        bag = bag_offsets[batch.index].to(batch.ids.device)  # (B, C)
        logits = model(batch.ids, batch.lengths, bag=bag)  # (B, C)
    else:
        logits = model(batch.ids, batch.lengths)  # (B, C)
    return StepOutput(F.cross_entropy(logits, batch.labels),
                            metrics={"acc": (logits.argmax(1) == batch.labels).float().mean()},
                            size=len(batch))


def pretrain_on_labelled(model: SentimentClassifier, sequences: list[list[int]], labels: list[int],
                         config: TrainConfig, epochs: int, batch_size: int | None,
                         source: str, budget: Budget | None = None) -> dict:
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
          f"epoch(s)", flush=True)
    result = training.fit(TrainSpec(
        task=NAME + "-transfer", model=model, model_config={},
        train_batches=shuffled_batches(pick(sequences, kept), pick(labels, kept), config.batch_size,
                                       config.seed + 7907),
        step=classifier_step,
        valid_batches=list(text_batches(pick(sequences, held), pick(labels, held), 256)),
        monitor="acc", lower_is_better=False, budget=budget), _pretrain_config(config, epochs, None))
    return {"source": source, "examples": len(kept), "held_out": len(held), "epochs": epochs,
            "best_epoch": result.best_epoch, "held_out_acc": round(result.best_metrics["acc"], 4),
            "seconds": round(time.perf_counter() - started, 1)}
