"""What `lstmkit export` ships of a sentiment model: (ids (B, T), lengths (B,)) -> logits (B, C),
batch size and length dynamic; the lengths run as a mask inside the exported graph."""
from __future__ import annotations

import torch
from torch.export import Dim

from lstmkit.deploy import ExportForm, StandIn


def export_form(loaded) -> ExportForm:
    vocab = loaded.config.vocab_size
    generator = torch.Generator().manual_seed(0)

    def example(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(1, vocab, (len(lengths), max(lengths)), generator=generator)
        for row, n in enumerate(lengths):
            ids[row, n:] = 0                                  # padding past each text's end
        return ids, torch.tensor(lengths)

    batch = Dim("batch", max=4096)
    return ExportForm(loaded.model, example([7, 4]), ("ids", "lengths"), ("logits",),
                      ({0: batch, 1: Dim("steps", max=100_000)}, {0: batch}),
                      checks=(example([12, 1, 5]), example([3])))


def from_exported(exported, config) -> StandIn:
    return StandIn(exported)
