"""Class labels: label strings <-> class indices, saved as plain JSON."""
from __future__ import annotations

import re
from typing import Iterable

from lstmkit.errors import UsageError


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
        """Inverse of `to_json`; ValueError saying what is wrong with `data` (a file's contents)."""
        names = data.get("names") if isinstance(data, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError('expected {"names": [label strings]}')
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"expected two or more distinct labels, got {len(names)} names "
                             f"({len(set(names))} distinct)")
        return cls(names)
