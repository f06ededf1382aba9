"""What `lstmkit export` ships of a sequence classifier: pixel sequences (B, steps, input_size) ->
logits (B, 10), batch size dynamic (steps and pixels per step are the model's mode)."""
from __future__ import annotations

import torch
from torch.export import Dim

from lstmkit.deploy import ExportForm


def export_form(loaded) -> ExportForm:
    config = loaded.config
    generator = torch.Generator().manual_seed(0)
    example = lambda batch: (torch.rand(batch, config.steps, config.input_size, generator=generator),)  # noqa
    return ExportForm(loaded.model, example(2), ("sequences",), ("logits",), ({0: Dim("batch", max=1_000_000)},),
                      checks=(example(3), example(1)))
