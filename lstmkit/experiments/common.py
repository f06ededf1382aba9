"""Plumbing shared by the experiments: models, their training, tables, the run context."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

import lstmkit
from lstmkit.training import TrainConfig, TrainSpec, fit

KINDS = ("rnn", "lstm")


def make_recurrent(kind: str, input_size: int, hidden_size: int) -> nn.Module:
    """The one place where recurrent layers are built: lstmkit's drop-in LSTM or tanh RNN."""
    if kind == "lstm":
        return lstmkit.LSTM(input_size, hidden_size, batch_first=True)
    if kind == "rnn":
        return lstmkit.RNN(input_size, hidden_size, nonlinearity="tanh", batch_first=True)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


class RecurrentModel(nn.Module):
    """Input layer -> one recurrent layer -> linear head applied to every step.

    ``vocab_size`` given: token ids (B, T) go through an embedding; otherwise inputs are (B, T, input_size).
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, output_size: int,
                 vocab_size: int | None = None):
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(vocab_size, input_size) if vocab_size else None
        self.recurrent = make_recurrent(kind, input_size, hidden_size)
        self.head = nn.Linear(hidden_size, output_size)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.embedding(inputs) if self.embedding is not None else inputs  # (B, T, I)

    def forward_embedded(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.recurrent(x)  # (B, T, H)
        return self.head(hidden)       # (B, T, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(inputs))


class _Stream:
    """`steps` batches made one at a time by `make()`, with a length for the progress bar."""

    def __init__(self, steps: int, make: Callable[[int], Any]):
        self.steps, self.make = steps, make

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return (self.make(step) for step in range(self.steps))


def train_steps(name: str, model: nn.Module, steps: int, make_batch: Callable[[int], Any],
                loss: Callable[..., torch.Tensor], lr: float, seed: int, show_progress: bool,
                clip: float = 1.0) -> nn.Module:
    """Train `model` in place for `steps` Adam updates through the one training loop (one epoch,
    nothing saved), with gradient-norm clipping (tanh RNNs explode on long sequences without it).

    make_batch(step) -> a tuple of tensors; loss(model, *batch) -> the scalar to minimise."""
    config = TrainConfig(out=None, epochs=1, lr=lr, clip=clip, seed=seed, device="cpu", amp=False,
                         progress=show_progress)
    fit(TrainSpec(task=name, model=model, model_config={}, train_batches=_Stream(steps, make_batch),
                  step=lambda model, batch, state: loss(model, *batch), log=None), config)
    return model


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned text table for the terminal."""
    cells = [[str(h) for h in headers]] + [[format_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_cell(value: Any) -> str:
    """Floats with 3 decimals, tiny ones in scientific notation (gradient ratios reach 1e-64)."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"
    return str(value)


@dataclass
class ExperimentResult:
    """What one experiment hands to the report: numbers, a table, figures and an explanation."""

    name: str
    title: str
    metrics: dict[str, Any]
    headers: list[str]
    rows: list[list[Any]]
    figures: list[str] = field(default_factory=list)   # file names inside the run folder
    explanation: str = ""
    extra_html: str = ""                                # e.g. the gate heat map over text
    headline: str = ""                                  # one line for the summary
    seconds: float = 0.0


@dataclass
class RunContext:
    """Settings shared by every experiment of one run, and the models they share."""

    seed: int = 0
    quick: bool = False
    show_progress: bool = True
    log: Callable[[str], None] = print
    # Trained Cliff models, reused by the gradient and gate experiments: {kind: model}.
    cliff_models: dict[str, Any] = field(default_factory=dict)
    cliff_options: dict[str, Any] = field(default_factory=dict)
    adding_lengths: list[int] | None = None
    copy_lengths: list[int] | None = None
