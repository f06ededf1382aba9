"""The texts of a sentiment run, read and encoded once: training, validation (a seeded share of
the training texts unless --valid), test, the --pretrain-on texts and the --unlabelled ones.

`lstmkit evaluate` reads a finished run's texts the same way (`read_labelled`, `split_valid`), so
its baseline is fitted on exactly the texts the run's baseline was.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lstmkit.data.batching import truncate
from lstmkit.data.labels import LabelSet
from lstmkit.data.readers import Example, read_examples, read_unlabelled
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.data.vocabulary import PAD, UNK, Vocabulary
from lstmkit.errors import UsageError
from lstmkit.tasks.sentiment.config import SentimentData, SentimentModel, TrainRecipe, Transfer
from lstmkit.tasks.sentiment.pretraining import label_map


@dataclass
class Encoded:
    sequences: list[list[int]]
    labels: list[int]
    tokens: list[list[str]]


@dataclass
class Texts:
    """Everything read and encoded before training."""
    labels: LabelSet
    vocab: Vocabulary
    train: Encoded
    valid: Encoded
    test: Encoded | None
    transfer: Encoded  # the --pretrain-on texts, their labels as training classes (often none)
    unlabelled: list[list[int]] = field(default_factory=list)  # --unlabelled, for pretraining
    skipped: dict[str, int] = field(default_factory=dict)      # file -> bad lines skipped


def read_labelled(path: Path, data: SentimentData, detect: bool = False, part: str = "train",
                  skipped: dict[str, int] | None = None) -> list[Example]:
    """Labelled examples; detect=True: format and columns detected (the --pretrain-on file);
    `part`: what a data set's root folder stands for. How many bad lines --skip-bad skipped goes
    to stderr and into `skipped` (file -> count)."""
    result = (read_examples(path, skip_bad=data.skip_bad, encoding=data.encoding) if detect else
              read_examples(path, data.format, data.text_column, data.label_column, data.skip_bad,
                            data.encoding, part))
    if result.skipped:
        print(f"{path}: skipped {len(result.skipped)} bad line(s); first: {result.skipped[0]}",
              file=sys.stderr)
    if skipped is not None:
        skipped[str(path)] = len(result.skipped)
    return result.examples


def split_valid(examples: list[Example], fraction: float, seed: int):
    """(training, validation) examples: a seeded `fraction` held out, each part in file order."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, int(len(examples) * fraction))
    if cut >= len(examples):
        raise UsageError(f"{len(examples)} training example(s) are too few to hold out validation "
                         f"data; give --valid FILE")
    return [examples[i] for i in sorted(order[cut:])], [examples[i] for i in sorted(order[:cut])]


def training_examples(data: SentimentData, seed: int, skipped: dict[str, int] | None = None):
    """(training, validation) examples as the run uses them."""
    train = read_labelled(data.train, data, skipped=skipped)
    if data.valid:
        return train, read_labelled(data.valid, data, skipped=skipped)
    return split_valid(train, data.valid_fraction, seed)


def kept_tokens(model: SentimentModel) -> int | None:
    """How many tokens of each text a classifier is given: all of them when it has a bag (the
    bag reads the whole text, the LSTM its first max_len), else max_len."""
    return None if model.bag_buckets else model.max_len


def encode_texts(tokens: list[list[str]], vocab: Vocabulary, max_len: int | None) -> list[list[int]]:
    return [truncate(vocab.encode(t), max_len, vocab.pad_index) for t in tokens]


def encode_examples(examples, tokens, vocab, labels: LabelSet, max_len) -> Encoded:
    return Encoded(encode_texts(tokens, vocab, max_len),
                   [labels.encode(e.label, e.where) for e in examples], tokens)


def _transfer_data(transfer: Transfer, data: SentimentData,
                   labels: LabelSet) -> tuple[list[Example], dict[str, int]]:
    """The --pretrain-on examples and how their labels read as training classes (none without it)."""
    if transfer.pretrain_on is None:
        return [], {}
    examples = read_labelled(transfer.pretrain_on, data, detect=True)
    return examples, label_map(transfer.pretrain_label_map, (e.label for e in examples), labels,
                               transfer.pretrain_on)


def read_and_encode(recipe: TrainRecipe, seed: int) -> Texts:
    data, skipped = recipe.data, {}
    train_examples, valid_examples = training_examples(data, seed, skipped)
    test_examples = read_labelled(data.test, data, part="test", skipped=skipped) if data.test else None
    labels = LabelSet.build(e.label for e in train_examples)
    transfer_examples, transfer_labels = _transfer_data(recipe.transfer, data, labels)
    unlabelled = read_unlabelled(data.unlabelled, data.encoding) if data.unlabelled else []
    tokenizer = Tokenizer("text", lowercase=recipe.model.lowercase)
    tokens = {name: [tokenizer(e.text) for e in examples] for name, examples in
              (("train", train_examples), ("valid", valid_examples), ("test", test_examples or []),
               ("transfer", transfer_examples))}
    tokens["unlabelled"] = [tokenizer(text) for text in unlabelled]
    # Words of the unlabelled texts get embeddings too: the pretraining learns them.
    vocab = Vocabulary.build(tokens["train"] + tokens["transfer"] + tokens["unlabelled"],
                             min_freq=data.min_freq, max_size=data.max_vocab, pad=PAD, unk=UNK)
    max_len, kept = recipe.model.max_len, kept_tokens(recipe.model)
    transfer_sequences = encode_texts(tokens["transfer"], vocab, max_len)
    return Texts(labels, vocab, encode_examples(train_examples, tokens["train"], vocab, labels, kept),
                 encode_examples(valid_examples, tokens["valid"], vocab, labels, kept),
                 encode_examples(test_examples, tokens["test"], vocab, labels, kept)
                 if test_examples else None,
                 Encoded(transfer_sequences, [transfer_labels[e.label] for e in transfer_examples],
                         tokens["transfer"]),
                 encode_texts(tokens["unlabelled"], vocab, max_len), skipped)
