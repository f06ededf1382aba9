"""Text corpora for language models: reading, character or word tokens, a vocabulary, and the
batching of one long token stream into B parallel streams cut into chunks for truncated BPTT.

Word level follows the Penn Treebank convention: tokens are split on whitespace and every line
ends with an `<eos>` token; words never seen in training become `<unk>`.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from lstmkit.errors import UsageError

LEVELS = ("char", "word")
EOS = "<eos>"
UNK = "<unk>"


def read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"text file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    if not text.strip():
        raise UsageError(f"{path} is empty (or only whitespace); a language model needs text to learn from")
    return text


def tokenize(text: str, level: str) -> list[str]:
    if level == "char":
        return list(text)
    if level == "word":
        tokens: list[str] = []
        for line in text.splitlines():
            words = line.split()
            if words:
                tokens.extend(words)
                tokens.append(EOS)
        return tokens
    raise UsageError(f"--level {level!r} is not known; allowed: {', '.join(LEVELS)}")


def detokenize(tokens: list[str], level: str) -> str:
    if level == "char":
        return "".join(tokens)
    lines, words = [], []
    for token in tokens:
        if token == EOS:
            lines.append(" ".join(words) + "\n")
            words = []
        else:
            words.append(token)
    return "".join(lines) + " ".join(words)


class TokenVocabulary:
    """Token <-> id for one level. Characters keep sorted order; words go by falling frequency."""

    def __init__(self, tokens: list[str], level: str):
        self.itos = list(tokens)
        self.level = level
        self.stoi = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(cls, tokens: list[str], level: str) -> "TokenVocabulary":
        if level == "char":
            return cls(sorted(set(tokens)), level)
        counts = Counter(tokens)
        counts.setdefault(UNK, 0)  # always present, so unseen words in validation text have a place
        return cls(sorted(counts, key=lambda token: (-counts[token], token)), level)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str], what: str = "the text") -> torch.Tensor:
        """Ids (N,) int64. Unknown words map to <unk>; unknown characters are refused (no <unk> char)."""
        unk = self.stoi.get(UNK)
        ids = []
        unknown = []
        for token in tokens:
            index = self.stoi.get(token, unk)
            if index is None:
                unknown.append(token)
            else:
                ids.append(index)
        if unknown:
            shown = "".join(sorted(set(unknown)))[:40]
            raise UsageError(f"{what} has {len(set(unknown))} character(s) the model never saw: {shown!r}; "
                             f"use only characters of its vocabulary ({len(self)} characters)")
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids) -> str:
        return detokenize([self.itos[int(i)] for i in ids], self.level)

    def to_dict(self) -> dict:
        return {"level": self.level, "tokens": self.itos}

    @classmethod
    def from_dict(cls, data: dict) -> "TokenVocabulary":
        return cls(data["tokens"], data["level"])


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut one stream (N,) into batch_size contiguous streams (B, N // B); row b continues itself
    from chunk to chunk, which is what lets the LSTM state be carried across chunks."""
    length = ids.numel() // batch_size
    if length < 2:
        raise UsageError(f"the text has {ids.numel()} tokens: too few for --batch-size {batch_size} "
                         f"(each of the {batch_size} streams needs at least 2 tokens)")
    return ids[: length * batch_size].view(batch_size, length)  # (B, L)


def bptt_chunks(streams: torch.Tensor, bptt: int):
    """Yield (inputs, targets), each (B, T<=bptt), targets shifted one token ahead, in stream order."""
    length = streams.size(1)
    for start in range(0, length - 1, bptt):
        end = min(start + bptt, length - 1)
        yield streams[:, start:end], streams[:, start + 1: end + 1]


def split_tokens(tokens: list[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    """Hold out the last part of the text for validation (chronological, no shuffling of text)."""
    if not 0.0 < valid_fraction < 1.0:
        raise UsageError(f"--valid-fraction must be in (0, 1), got {valid_fraction}")
    cut = int(len(tokens) * (1.0 - valid_fraction))
    if cut < 2 or len(tokens) - cut < 2:
        raise UsageError(f"the text has {len(tokens)} tokens: too few to hold out a validation part")
    return tokens[:cut], tokens[cut:]
