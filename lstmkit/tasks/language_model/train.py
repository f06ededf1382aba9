"""`lstmkit train lm`: stateful truncated back-propagation through time over one long text.

The text is cut into B parallel streams; each batch is the next chunk of T tokens of every stream,
and the LSTM state at the end of a chunk is the start state of the next one (detached, so
gradients stop at the chunk border while memory does not). Validation runs the same way over the
held-out text and reports nats per token, bits per character (char level) or perplexity (word).
"""
from __future__ import annotations

import dataclasses
import json
import time

import torch

from lstmkit.data.readers import read_text
from lstmkit.data.streams import batchify, bptt_chunks, split_tokens
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.data.vocabulary import UNK, Vocabulary
from lstmkit.errors import UsageError
from lstmkit.recipe import to_json
from lstmkit.tasks.evaluation import run_recipe_files
from lstmkit.tasks.language_model.config import NAME, LMData, TrainRecipe, check_recipe
from lstmkit.tasks.language_model.model import MODEL, build_model, describe_loss
from lstmkit.tasks.saved_model import load_model
from lstmkit.training import (StepOutput, TrainSpec, atomic, detach_state, evaluate_batches, fit,
                              setup)
from lstmkit.training.budget import Budget


def build_vocabulary(tokens: list[str], level: str) -> Vocabulary:
    """Characters in sorted order (none unknown); words by falling frequency with <unk> among them,
    so unseen words in validation text have a place and an adaptive softmax its clusters."""
    if level == "char":
        return Vocabulary.build([tokens], order="alphabetical")
    return Vocabulary.build([tokens], order="frequency-alphabetical", unk=UNK, specials_first=False)


def encode(vocab: Vocabulary, tokens: list[str], level: str, what: str) -> torch.Tensor:
    """Ids (N,); characters absent from training cannot be scored and are refused."""
    unit = "character" if level == "char" else "token"
    return torch.tensor(vocab.encode(tokens, what=what, unit=unit), dtype=torch.long)


def _load_corpus(data: LMData, level: str):
    tokenizer = Tokenizer(level)
    tokens = tokenizer(read_text(data.text, data.encoding))
    if data.valid_text:
        train_tokens, valid_tokens = tokens, tokenizer(read_text(data.valid_text, data.encoding))
    else:
        train_tokens, valid_tokens = split_tokens(tokens, data.valid_fraction)
    vocab = build_vocabulary(train_tokens, level)
    train_ids = encode(vocab, train_tokens, level, str(data.text))
    valid_ids = encode(vocab, valid_tokens, level,
                       str(data.valid_text or "the validation part of the text"))
    test_ids = None
    if data.test_text:
        test_ids = encode(vocab, tokenizer(read_text(data.test_text, data.encoding)), level,
                          str(data.test_text))
    return vocab, train_ids, valid_ids, test_ids


class StatefulChunks:
    """Training chunks in stream order, `per_epoch` at a time, and the state carried between them.

    The loop restarts `state` as None at each epoch; when an epoch is a slice of the text, the
    slice continues the previous one, so `step` picks the carried state up again (`continues`).
    The carried state is part of the run: `saved` and `restore` keep it in OUT/last, so --resume
    continues the text with the memory the uninterrupted run would have had.
    """

    def __init__(self, streams: torch.Tensor, bptt: int, per_epoch: int):
        self.chunks = list(bptt_chunks(streams, bptt))  # views, no copies
        self.per_epoch = per_epoch or len(self.chunks)
        self.carried = None

    def epoch(self, epoch: int) -> "_Epoch":
        return _Epoch(self, epoch)

    def saved(self) -> dict[str, torch.Tensor]:
        return {} if self.carried is None else {"h": self.carried[0], "c": self.carried[1]}

    def restore(self, tensors: dict[str, torch.Tensor], shape: tuple[int, ...]) -> None:
        """The carried state from `saved`'s tensors, each (layers, streams, hidden) = `shape`."""
        if not tensors:
            self.carried = None
            return
        if set(tensors) != {"h", "c"} or any(tuple(t.shape) != shape for t in tensors.values()):
            raise UsageError(f"the carried LSTM state in the checkpoint is not (h, c) of shape "
                             f"{shape}; resume with the run's own settings")
        self.carried = (tensors["h"], tensors["c"])

    def step(self, model, batch, state):
        inputs, targets, continues = batch  # (B, T), (B, T), bool
        if state is None and continues and model.training:
            state = self.carried
        loss, state = model(inputs, state, targets)  # mean nats per token
        if model.training:
            self.carried = detach_state(state)
        return StepOutput(loss, size=targets.numel(), state=state)


class _Epoch:
    """One epoch's chunks (sized, for the progress bar and the time estimates)."""

    def __init__(self, chunks: StatefulChunks, epoch: int):
        self.chunks, self.epoch = chunks, epoch

    def __len__(self) -> int:
        return self.chunks.per_epoch

    def __iter__(self):
        chunks = self.chunks
        for k in range(chunks.per_epoch):
            index = (self.epoch * chunks.per_epoch + k) % len(chunks.chunks)
            if index == 0:
                chunks.carried = None  # back at the start of the text: nothing to continue
            inputs, targets = chunks.chunks[index]
            yield inputs, targets, index != 0


def _eval_chunks(ids: torch.Tensor, batch_size: int, bptt: int) -> list:
    streams = batchify(ids, min(batch_size, max(1, ids.numel() // (2 * bptt))))  # short texts: fewer streams
    return [(inputs, targets, False) for inputs, targets in bptt_chunks(streams, bptt)]


def score_text(model, ids: torch.Tensor, batch_size: int, bptt: int, show: bool) -> float:
    """Mean nats per token of a text's ids (N,), read as the training reads its validation text."""
    return evaluate_batches(model, _eval_chunks(ids, batch_size, bptt), _eval_step,
                            torch.device("cpu"), show=show, description="test")["loss"]


def _eval_step(model, batch, state):
    inputs, targets, _ = batch
    loss, state = model(inputs, state, targets)
    return StepOutput(loss, size=targets.numel(), state=state)


def main(recipe: TrainRecipe) -> int:
    model_config, options, config = recipe.model, recipe.lm, recipe.training
    check_recipe(recipe)
    setup(config)
    started, budget = time.monotonic(), Budget.start(config.max_minutes)
    vocab, train_ids, valid_ids, test_ids = _load_corpus(recipe.data, model_config.level)
    cutoffs = tuple(c for c in model_config.cutoffs if c < len(vocab) - 1) \
        if model_config.softmax == "adaptive" else ()  # a small vocabulary needs fewer clusters
    model_config = dataclasses.replace(
        model_config, vocab_size=len(vocab), cutoffs=cutoffs,
        embedding_dim=model_config.embedding_dim or (64 if model_config.level == "char"
                                                     else model_config.hidden_size))
    model = build_model(model_config, config.backend)
    streams = batchify(train_ids, config.batch_size)  # (B, N / B)
    chunks = StatefulChunks(streams, options.bptt, options.chunks_per_epoch)
    epoch_starts: list[float] = []
    print(f"{model_config.level} LM: {len(vocab)} tokens in vocabulary, {train_ids.numel():,} "
          f"training tokens, {valid_ids.numel():,} validation; "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{len(chunks.chunks)} chunks of {config.batch_size}x{options.bptt} per pass", flush=True)
    state_shape = (model_config.num_layers, streams.size(0), model_config.hidden_size)
    spec = TrainSpec(task=NAME, model=model, model_config=to_json(model_config), step=chunks.step,
                     train_batches=chunks.epoch,
                     valid_batches=_eval_chunks(valid_ids, config.batch_size, options.bptt),
                     on_epoch_start=lambda epoch: epoch_starts.append(time.monotonic()),
                     extras={"vocab": vocab.to_json()}, budget=budget,
                     run_files=run_recipe_files(recipe),
                     eval_items=valid_ids.numel(),
                     final_items=test_ids.numel() if test_ids is not None else 0,
                     task_state=chunks.saved,
                     load_task_state=lambda tensors: chunks.restore(tensors, state_shape))
    result = fit(spec, config)
    if result.stopped_by_budget:
        print(f"stopped: --max-minutes {config.max_minutes:g} reached", flush=True)
    return _finish(recipe, test_ids, epoch_starts, started)


def _finish(recipe: TrainRecipe, test_ids, epoch_starts, started) -> int:
    """Score the best-on-validation weights on the test text once; write the curve with wall times."""
    out, config, level = recipe.training.out, recipe.training, recipe.model.level
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    # The epochs this process ran are the last ones; those before a --resume have no wall time here.
    ends = [None] * (len(history) - len(epoch_starts)) + epoch_starts[1:] + [time.monotonic()]
    curve = [{"epoch": r["epoch"], "minutes": None if end is None else round((end - started) / 60, 3),
              "train_loss": r.get("train_loss"), "valid_loss": r.get("valid_loss"), "lr": r.get("lr")}
             for r, end in zip(history, ends)]
    best = load_model(out / "best", MODEL)
    best_valid = best.checkpoint.info.get("metrics", {}).get("loss")
    summary = {"level": level, "best_valid_loss": best_valid, "curve": curve,
               "minutes": round((time.monotonic() - started) / 60, 3)}
    if test_ids is not None:
        summary["test_loss"] = score_text(best.model, test_ids, config.batch_size, recipe.lm.bptt,
                                          config.progress)
        print(f"test: {describe_loss(summary['test_loss'], level)}")
    atomic.write_text(out / "lm_metrics.json", json.dumps(summary, indent=1))
    print(f"best validation: {describe_loss(best_valid, level)}; checkpoint: {out / 'best'}")
    return 0
