"""What `lstmkit export` ships of a language model: its generation step,
(token (B,), h (L, B, H), c (L, B, H)) -> (scores (B, V), h', c'), the state kept by the caller,
batch size dynamic. `lstmkit generate --model FILE` runs the prime and every sampled token
through it, one step each, as it does with the checkpoint.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.export import Dim

from lstmkit.deploy import ExportForm


class GenerationStep(nn.Module):
    """One token through the model, the LSTM state in and out as tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        embedded = self.model.dropout(self.model.embedding(token))         # (B, E)
        output, (h, c) = self.model.lstm.step(embedded, (h, c))           # (B, H)
        return self.model._scores(self.model.dropout(output)), h, c       # (B, V)


def _zero_state(config, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (config.num_layers, batch, config.hidden_size)
    return torch.zeros(shape), torch.zeros(shape)


def export_form(loaded) -> ExportForm:
    config = loaded.config
    generator = torch.Generator().manual_seed(0)

    def example(batch: int):
        h, c = (0.5 * torch.randn(config.num_layers, batch, config.hidden_size, generator=generator)
                for _ in range(2))
        return torch.randint(0, config.vocab_size, (batch,), generator=generator), h, c

    batch = Dim("batch", max=4096)
    token, _, _ = example(2)
    return ExportForm(GenerationStep(loaded.model), (token, *_zero_state(config, 2)), ("token", "h", "c"),
                      ("scores", "h_next", "c_next"), ({0: batch}, {1: batch}, {1: batch}),
                      checks=(example(3), example(1)))


class ExportedLanguageModel:
    """An exported generation step where `generate` expects the model: ``model(ids (1, P))`` runs
    the prime one step at a time, ``model.step(token, state)`` one more."""

    def __init__(self, exported, config) -> None:
        self.exported, self.config = exported, config

    def __call__(self, ids: torch.Tensor, state=None):
        state = state if state is not None else _zero_state(self.config, ids.shape[0])
        scores = []
        for token in ids.unbind(1):                                       # (B,) each
            step_scores, *state = self.exported.run(token, *state)
            scores.append(step_scores)
        return torch.stack(scores, dim=1), tuple(state)                   # (B, P, V)

    def step(self, token: int, state):
        scores, *state = self.exported.run(torch.tensor([token]), *state)
        return scores[0], tuple(state)

    def eval(self) -> "ExportedLanguageModel":
        return self
