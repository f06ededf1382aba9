"""Plumbing shared by the experiments: models, seeding, progress bars, tables, the run context."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

import lstmkit

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


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
               clip: float = 1.0) -> float:
    """One update with gradient-norm clipping (tanh RNNs explode on long sequences without it)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return float(loss.detach())


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass


@contextmanager
def progress(total: int, description: str, enabled: bool):
    """A tqdm bar on stderr when enabled and tqdm is installed; otherwise a silent stand-in."""
    if not enabled:
        yield _NoBar()
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield _NoBar()
        return
    bar = tqdm(total=total, desc=description, leave=False, file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


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
