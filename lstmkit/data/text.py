"""Word tokenizer, vocabulary (padding + UNK) and label set, each saved as plain JSON.

The tutorial this project grew from mapped unknown words to the padding index, so an unseen word
looked like "nothing here" and was masked like padding. Here index 0 is padding (never a word) and
index 1 is UNK: an unknown word is a real token the model sees and learns an embedding for.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from lstmkit.errors import UsageError

PAD, UNK = "<pad>", "<unk>"
PAD_INDEX, UNK_INDEX = 0, 1

# Words (with inner apostrophes and hyphens: "don't", "well-made"), numbers, and single
# punctuation marks ("!" and "?" carry sentiment). "n't" is split off so "don't"/"didn't" share it.
_TOKEN = re.compile(r"n't|[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+(?:[.,]\d+)*|[^\w\s]", re.UNICODE)
_NEGATION = re.compile(r"(?<=\w)n['’]t\b")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """'I didn't like it!!' -> ['i', 'did', "n't", 'like', 'it', '!', '!']"""
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(_NEGATION.sub(" n't", text))


class Vocabulary:
    """Token <-> index with index 0 = padding, 1 = UNK; built from training texts only."""

    def __init__(self, tokens: list[str]):
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {[PAD, UNK]}, got {tokens[:2]}")
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, tokenized: Iterable[list[str]], min_freq: int = 1,
              max_size: int | None = None) -> "Vocabulary":
        """Words seen at least `min_freq` times, the `max_size` most frequent (ties: first seen)."""
        if min_freq < 1:
            raise UsageError(f"--min-freq must be >= 1, got {min_freq}")
        counts = Counter(token for tokens in tokenized for token in tokens)
        kept = [t for t, c in counts.most_common() if c >= min_freq and t not in (PAD, UNK)]
        if max_size is not None:
            kept = kept[:max(max_size - 2, 0)]
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(token, UNK_INDEX) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_json(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        return cls(list(data["tokens"]))


class LabelSet:
    """Label strings <-> class indices, in a stable order (numeric labels sorted as numbers)."""

    def __init__(self, names: list[str]):
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def build(cls, labels: Iterable[str]) -> "LabelSet":
        distinct = set(labels)
        if len(distinct) < 2:
            raise UsageError(f"training data has only the label(s) {sorted(distinct)}; a "
                             f"classifier needs at least two classes")
        numeric = all(re.fullmatch(r"-?\d+", name) for name in distinct)
        return cls(sorted(distinct, key=int) if numeric else sorted(distinct))

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, label: str, where: str = "") -> int:
        if label not in self.index:
            raise UsageError(f"{where}: label {label!r} never appears in the training data "
                             f"(known labels: {', '.join(self.names)})")
        return self.index[label]

    def to_json(self) -> dict:
        return {"names": self.names}

    @classmethod
    def from_json(cls, data: dict) -> "LabelSet":
        return cls(list(data["names"]))
