"""What `lstmkit export` ships of a forecaster: scaled windows (B, window, C) -> scaled forecasts
(B, horizon), batch size dynamic (the window is the model's own)."""
from __future__ import annotations

import torch
from torch.export import Dim

from lstmkit.deploy import ExportForm, StandIn


def export_form(loaded) -> ExportForm:
    config = loaded.config
    generator = torch.Generator().manual_seed(0)
    example = lambda batch: (torch.randn(batch, config.window, len(config.columns), generator=generator),)  # noqa
    return ExportForm(loaded.model, example(2), ("windows",), ("forecasts",), ({0: Dim("batch", max=1_000_000)},),
                      checks=(example(5), example(1)))


def from_exported(exported, config) -> StandIn:
    return StandIn(exported)
