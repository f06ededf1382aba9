"""One vocabulary (tokens <-> ids) for every task and the experiments, saved as plain JSON.

Optional special tokens: `pad` (the padding id, never a word) and `unk` (what unknown tokens read
as: a real token the model learns an embedding for, unlike mapping them to padding). Without
`unk`, unknown tokens are refused with a message naming them (a character-level model has no
"unknown character").

Built from training tokens only, in one of the named orders:
    frequency               most frequent first, ties in order of first appearance
    frequency-alphabetical  most frequent first, ties alphabetically
    alphabetical            sorted
Frequency orders give an adaptive softmax its clusters (frequent words first).
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from lstmkit.errors import UsageError

PAD, UNK = "<pad>", "<unk>"
ORDERS = {
    "frequency": lambda counts: [t for t, _ in counts.most_common()],
    "frequency-alphabetical": lambda counts: sorted(counts, key=lambda t: (-counts[t], t)),
    "alphabetical": lambda counts: sorted(counts),
}


class Vocabulary:
    def __init__(self, tokens: list[str], *, pad: str | None = None, unk: str | None = None):
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        for name, special in (("pad", pad), ("unk", unk)):
            if special is not None and special not in self.index:
                raise ValueError(f"the {name} token {special!r} is not among the tokens")
        self.pad, self.unk = pad, unk
        self.pad_index = self.index[pad] if pad is not None else None
        self.unk_index = self.index[unk] if unk is not None else None

    @classmethod
    def build(cls, tokenized: Iterable[list[str]], *, order: str = "frequency", min_freq: int = 1,
              max_size: int | None = None, pad: str | None = None, unk: str | None = None,
              specials_first: bool = True) -> "Vocabulary":
        """Tokens seen at least `min_freq` times, in `order`, at most `max_size` in all.

        The special tokens come first (pad, then unk) or, with specials_first=False, take their
        place in the order by their own count (zero when the text never has them)."""
        if min_freq < 1:
            raise UsageError(f"--min-freq must be >= 1, got {min_freq}")
        if order not in ORDERS:
            raise ValueError(f"order {order!r}: expected one of {', '.join(ORDERS)}")
        specials = [t for t in (pad, unk) if t is not None]
        counts = Counter(token for tokens in tokenized for token in tokens)
        if not specials_first:
            for token in specials:
                counts.setdefault(token, 0)
        kept = [t for t in ORDERS[order](counts)
                if (t in specials and not specials_first) or (t not in specials and counts[t] >= min_freq)]
        if specials_first:
            limit = None if max_size is None else max(max_size - len(specials), 0)
            kept = specials + kept[:limit]
        elif max_size is not None:
            kept = kept[:max_size]
        return cls(kept, pad=pad, unk=unk)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str], what: str = "the text", unit: str = "token") -> list[int]:
        """Ids of `tokens`; unknown ones read as `unk`, or are refused without one (UsageError)."""
        if self.unk is not None:
            unk = self.unk_index
            return [self.index.get(token, unk) for token in tokens]
        unknown = {token for token in tokens if token not in self.index}
        if unknown:
            shown = "".join(sorted(unknown)) if unit == "character" else " ".join(sorted(unknown))
            raise UsageError(f"{what} has {len(unknown)} {unit}(s) the model never saw: "
                             f"{shown[:40]!r}; use only {unit}s of its vocabulary "
                             f"({len(self)} {unit}s)")
        return [self.index[token] for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "pad": self.pad, "unk": self.unk}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        """Inverse of `to_json`; ValueError saying what is wrong with `data` (a file's contents)."""
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError('expected {"tokens": [strings], "pad": ..., "unk": ...}')
        if len(set(tokens)) != len(tokens):
            raise ValueError("a token appears twice in the vocabulary")
        specials = data.get("pad"), data.get("unk")
        if not all(special is None or isinstance(special, str) for special in specials):
            raise ValueError('"pad" and "unk" must be tokens or null')
        return cls(tokens, pad=specials[0], unk=specials[1])
