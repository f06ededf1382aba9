"""One tokenizer with named strategies, saved with a model as JSON so prediction reads text the
way training did.

    char   every character is a token (character-level language models)
    word   whitespace-separated words, and "<eos>" at the end of every line (the Penn Treebank
           convention of word-level language models)
    text   words (with inner apostrophes and hyphens: "don't", "well-made"), numbers and single
           punctuation marks ("!" and "?" carry sentiment); "n't" split off so "don't" and
           "didn't" share it (text classification)

`lowercase` folds case first (any strategy).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from lstmkit.errors import UsageError

STRATEGIES = ("char", "word", "text")
EOS = "<eos>"

_TEXT_TOKEN = re.compile(r"n't|[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+(?:[.,]\d+)*|[^\w\s]", re.UNICODE)
_NEGATION = re.compile(r"(?<=\w)n['’]t\b")


@dataclass(frozen=True)
class Tokenizer:
    strategy: str = "text"
    lowercase: bool = False

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise UsageError(f"tokenizer {self.strategy!r} is not known; allowed: {', '.join(STRATEGIES)}")

    def __call__(self, text: str) -> list[str]:
        """'I didn't LIKE it!!' with text, lowercase -> ['i', 'did', "n't", 'like', 'it', '!', '!']"""
        if self.lowercase:
            text = text.lower()
        if self.strategy == "char":
            return list(text)
        if self.strategy == "word":
            tokens: list[str] = []
            for line in text.splitlines():
                words = line.split()
                if words:
                    tokens.extend(words)
                    tokens.append(EOS)
            return tokens
        return _TEXT_TOKEN.findall(_NEGATION.sub(" n't", text))

    def detokenize(self, tokens: list[str]) -> str:
        if self.strategy == "char":
            return "".join(tokens)
        if self.strategy == "text":
            return " ".join(tokens)
        lines, words = [], []
        for token in tokens:
            if token == EOS:
                lines.append(" ".join(words) + "\n")
                words = []
            else:
                words.append(token)
        return "".join(lines) + " ".join(words)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Tokenizer":
        return cls(**data)
