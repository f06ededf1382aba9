"""Character- and word-level language models: `lstmkit train lm`, sampled by `lstmkit generate`.

Training is stateful truncated back-propagation through time: the text is cut into B parallel
streams; each batch is the next chunk of T tokens of every stream, and the LSTM state at the end
of a chunk is the start state of the next one (detached, so gradients stop at the chunk border
while memory does not). Validation runs the same way over the held-out text and reports nats per
token, bits per character (char level) or perplexity (word level).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from lstmkit.data.corpus import LEVELS, TokenVocabulary, batchify, bptt_chunks, read_text, split_tokens, tokenize
from lstmkit import train
from lstmkit.errors import UsageError
from lstmkit.nn.layers import LSTM
from lstmkit.train_config import add_training_args

NAME = "lm"
HELP = "train a character- or word-level language model on a text file (sample it with `lstmkit generate`)"


class LanguageModel(nn.Module):
    """tokens (B, T) -> scores (B, T, V) (logits, or log-probabilities with the adaptive softmax),
    with the LSTM state passed in and out; given targets (B, T), the mean loss instead of scores.

    The adaptive softmax (Grave et al. 2017) gives frequent words a full output layer and rare words
    smaller clustered ones: on a 10k-word vocabulary it cuts the cost of the output layer, which
    otherwise dominates a word-level model on a CPU, several times over. It needs ids sorted by
    falling frequency, which the word vocabulary provides.
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0, tie_weights: bool = False, softmax: str = "full",
                 cutoffs: tuple[int, ...] = ()):
        super().__init__()
        self.vocab_size, self.softmax = vocab_size, softmax
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.dropout = nn.Dropout(dropout)
        self.lstm = LSTM(embed_size, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)
        if softmax == "adaptive":
            if tie_weights:
                raise UsageError("--tie-weights works with --softmax full only")
            if not cutoffs or list(cutoffs) != sorted(set(cutoffs)) or not 0 < cutoffs[0] or cutoffs[-1] >= vocab_size:
                raise UsageError(f"--cutoffs must increase strictly within 1..{vocab_size - 1}, got {list(cutoffs)}")
            self.head = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, list(cutoffs), div_value=4.0)
        elif softmax == "full":
            self.head = nn.Linear(hidden_size, vocab_size)
        else:
            raise UsageError(f"--softmax {softmax!r} is not known; allowed: full, adaptive")
        if tie_weights:
            # Press & Wolf 2017: one matrix for input and output embeddings (fewer parameters, lower ppl).
            if embed_size != hidden_size:
                raise UsageError(f"--tie-weights needs --embed-size == --hidden-size, got {embed_size} and {hidden_size}")
            self.head.weight = self.embedding.weight

    def forward(self, tokens: torch.Tensor, state=None, targets: torch.Tensor | None = None):
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        outputs, state = self.lstm(embedded, state)  # (B, T, H), ((L, B, H), (L, B, H))
        outputs = self.dropout(outputs)
        if targets is None:
            return self._scores(outputs), state  # (B, T, V)
        if self.softmax == "adaptive":
            return self.head(outputs.reshape(-1, outputs.size(-1)), targets.reshape(-1)).loss, state
        logits = self.head(outputs)  # (B, T, V)
        return nn.functional.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1)), state

    def step(self, token: int, state=None):
        """Scores (V,) of the token after ``token`` (what ``forward`` gives for one step: logits, or
        log-probabilities with the adaptive softmax) and the new state: one ``LSTM.step`` (the cpu
        engine's fused step under no_grad), for streaming generation."""
        embedded = self.dropout(self.embedding(torch.tensor([token], device=self.embedding.weight.device)))
        output, state = self.lstm.step(embedded, state)  # (1, H)
        return self._scores(self.dropout(output))[0], state

    def _scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., V): logits, or log-probabilities with the adaptive softmax."""
        if self.softmax == "adaptive":
            flat = outputs.reshape(-1, outputs.size(-1))
            return self.head.log_prob(flat).view(*outputs.shape[:-1], self.vocab_size)
        return self.head(outputs)


def model_from_config(config: dict) -> LanguageModel:
    return LanguageModel(config["vocab_size"], config["embed_size"], config["hidden_size"],
                         config["num_layers"], config.get("dropout", 0.0), config.get("tie_weights", False),
                         config.get("softmax", "full"), tuple(config.get("cutoffs", ())))


def describe_loss(nats: float, level: str) -> str:
    if level == "char":
        return f"{nats:.4f} nats/char ({nats / math.log(2):.3f} bits/char)"
    return f"{nats:.4f} nats/word (perplexity {math.exp(min(nats, 50)):.2f})"


# ---- command line ------------------------------------------------------------------------------

def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", required=True, help="UTF-8 training text")
    parser.add_argument("--valid-text", default=None,
                        help="validation text (default: the last --valid-fraction of --text)")
    parser.add_argument("--test-text", default=None, help="optional test text, scored once at the end")
    parser.add_argument("--level", choices=LEVELS, default="char")
    parser.add_argument("--valid-fraction", type=float, default=0.1)
    parser.add_argument("--embed-size", type=int, default=None, help="default: 64 (char) or --hidden-size (word)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--tie-weights", action="store_true", help="share input and output embeddings")
    parser.add_argument("--softmax", choices=("full", "adaptive"), default="full",
                        help="adaptive: a cheaper output layer for large word vocabularies (word level)")
    parser.add_argument("--cutoffs", default="2000,6000",
                        help="adaptive softmax: ids below each cutoff form a cluster (frequent words first)")
    parser.add_argument("--bptt", type=int, default=100, help="tokens per chunk (truncation length)")
    parser.add_argument("--chunks-per-epoch", type=int, default=0,
                        help="validate and checkpoint every N chunks (0: once per pass over the text); "
                             "the state still runs on across these shorter epochs")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after the epoch during which this much wall time has passed")
    add_training_args(parser, out=Path("runs/lm"), epochs=10, batch_size=32, lr=2e-3, clip=1.0,
                      lr_schedule="plateau")


# ---- training ----------------------------------------------------------------------------------

class _OutOfTime(Exception):
    """Raised at an epoch start once --max-minutes has passed; the epoch's checkpoints are written."""


def _load_corpus(args):
    for name in ("hidden_size", "num_layers", "bptt"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.chunks_per_epoch < 0:
        raise UsageError(f"--chunks-per-epoch must be >= 0, got {args.chunks_per_epoch}")
    tokens = tokenize(read_text(args.text), args.level)
    if args.valid_text:
        train_tokens, valid_tokens = tokens, tokenize(read_text(args.valid_text), args.level)
    else:
        train_tokens, valid_tokens = split_tokens(tokens, args.valid_fraction)
    vocab = TokenVocabulary.build(train_tokens, args.level)
    train_ids = vocab.encode(train_tokens, what=args.text)
    # Characters absent from training cannot be scored and are refused; words map to <unk>.
    valid_ids = vocab.encode(valid_tokens, what=args.valid_text or "the validation part of the text")
    test_ids = None
    if args.test_text:
        test_ids = vocab.encode(tokenize(read_text(args.test_text), args.level), what=args.test_text)
    return vocab, train_ids, valid_ids, test_ids


class StatefulChunks:
    """Training chunks in stream order, `per_epoch` at a time, and the state carried between them.

    The loop restarts `state` as None at each epoch; when an epoch is a slice of the text, the
    slice continues the previous one, so `step` picks the carried state up again (`continues`).
    """

    def __init__(self, streams: torch.Tensor, bptt: int, per_epoch: int, deadline: float | None):
        self.chunks = list(bptt_chunks(streams, bptt))  # views, no copies
        self.per_epoch = per_epoch or len(self.chunks)
        self.deadline = deadline
        self.carried = None

    def epoch(self, epoch: int):
        for k in range(self.per_epoch):
            index = (epoch * self.per_epoch + k) % len(self.chunks)
            if index == 0:
                self.carried = None  # back at the start of the text: nothing to continue
            inputs, targets = self.chunks[index]
            yield inputs, targets, index != 0
            if self.deadline is not None and time.monotonic() > self.deadline:
                return  # the epoch ends early; validation and checkpoints follow

    def step(self, model, batch, state):
        inputs, targets, continues = batch  # (B, T), (B, T), bool
        if state is None and continues and model.training:
            state = self.carried
        loss, state = model(inputs, state, targets)  # mean nats per token
        if model.training:
            self.carried = train.detach_state(state)
        return train.StepOutput(loss, size=targets.numel(), state=state)


def _cutoffs(args, vocab_size: int) -> list[int]:
    if args.softmax == "full":
        return []
    if args.level != "word":
        raise UsageError("--softmax adaptive is for word level (it needs ids sorted by frequency)")
    try:
        cutoffs = [int(c) for c in args.cutoffs.split(",") if c.strip()]
    except ValueError:
        raise UsageError(f"--cutoffs {args.cutoffs!r}: expected increasing integers such as 2000,6000") from None
    return [c for c in cutoffs if c < vocab_size - 1]  # a small vocabulary needs fewer clusters


def _eval_chunks(ids: torch.Tensor, batch_size: int, bptt: int) -> list:
    streams = batchify(ids, min(batch_size, max(1, ids.numel() // (2 * bptt))))  # short texts: fewer streams
    return [(inputs, targets, False) for inputs, targets in bptt_chunks(streams, bptt)]


def train_main(args) -> int:
    config = train.config_from_args(args)
    train.setup(config)
    vocab, train_ids, valid_ids, test_ids = _load_corpus(args)
    embed_size = args.embed_size or (64 if args.level == "char" else args.hidden_size)
    model_config = {"vocab_size": len(vocab), "embed_size": embed_size, "hidden_size": args.hidden_size,
                    "num_layers": args.num_layers, "dropout": args.dropout, "tie_weights": args.tie_weights,
                    "level": args.level, "softmax": args.softmax, "cutoffs": _cutoffs(args, len(vocab))}
    model = model_from_config(model_config)
    started = time.monotonic()
    deadline = started + args.max_minutes * 60 if args.max_minutes else None
    chunks = StatefulChunks(batchify(train_ids, config.batch_size), args.bptt, args.chunks_per_epoch, deadline)
    epoch_starts: list[float] = []

    def on_epoch_start(epoch: int) -> None:
        if deadline is not None and epoch_starts and time.monotonic() > deadline:
            raise _OutOfTime
        epoch_starts.append(time.monotonic())

    print(f"{args.level} LM: {len(vocab)} tokens in vocabulary, {train_ids.numel():,} training tokens, "
          f"{valid_ids.numel():,} validation; {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{len(chunks.chunks)} chunks of {config.batch_size}x{args.bptt} per pass", flush=True)
    spec = train.TrainSpec(task=NAME, model=model, model_config=model_config, step=chunks.step,
                           train_batches=chunks.epoch,
                           valid_batches=_eval_chunks(valid_ids, config.batch_size, args.bptt),
                           on_epoch_start=on_epoch_start, extras={"vocab": vocab.to_dict()})
    try:
        train.fit(spec, config)
    except _OutOfTime:
        print(f"stopped: --max-minutes {args.max_minutes} reached", flush=True)
    return _finish(Path(args.out), config, args, test_ids, epoch_starts, started)


def _finish(out: Path, config, args, test_ids, epoch_starts, started) -> int:
    """Score the best-on-validation weights on the test text once; write the curve with wall times."""
    from lstmkit.checkpoint import load_checkpoint

    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ends = epoch_starts[1:] + [time.monotonic()]
    curve = [{"epoch": r["epoch"], "minutes": round((end - started) / 60, 3), "train_loss": r.get("train_loss"),
              "valid_loss": r.get("valid_loss"), "lr": r.get("lr")} for r, end in zip(history, ends)]
    checkpoint = load_checkpoint(out / "best", task=NAME)
    best_valid = checkpoint.info.get("metrics", {}).get("loss")
    summary = {"level": args.level, "best_valid_loss": best_valid, "curve": curve,
               "minutes": round((time.monotonic() - started) / 60, 3)}
    if test_ids is not None:
        model = model_from_config(checkpoint.model_config)
        model.load_state_dict(checkpoint.state_dict)
        summary["test_loss"] = train.evaluate_batches(
            model, _eval_chunks(test_ids, config.batch_size, args.bptt), _eval_step, torch.device("cpu"))["loss"]
        print(f"test: {describe_loss(summary['test_loss'], args.level)}")
    (out / "lm_metrics.json").write_text(json.dumps(summary, indent=1))
    print(f"best validation: {describe_loss(best_valid, args.level)}; checkpoint: {out / 'best'}")
    return 0


def _eval_step(model, batch, state):
    inputs, targets, _ = batch
    loss, state = model(inputs, state, targets)
    return train.StepOutput(loss, size=targets.numel(), state=state)
