"""The sequence classifier: an LSTM reads the image as a sequence, a linear head classifies the
digit from the last hidden state (no convolution, no attention: the recurrence must remember)."""
from __future__ import annotations

import torch
from torch import nn

from lstmkit.nn.layers import LSTM
from lstmkit.tasks.saved_model import Disagreement, ModelKind, read_extra
from lstmkit.tasks.seqmnist.config import NAME, MnistModel, upgrade_v1
from lstmkit.tasks.seqmnist.export import export_form


class SequenceClassifier(nn.Module):
    """(B, T, I) sequences -> (B, classes) logits from the last step's hidden state."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, num_classes: int = 10,
                 dropout: float = 0.0, backend: str = "auto"):
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0, backend=backend)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(sequences)  # (B, T, H)
        return self.head(outputs[:, -1])  # (B, classes)


def build_model(config: MnistModel, backend: str = "auto") -> SequenceClassifier:
    """An untrained classifier as `config` describes it, running on engine `backend`."""
    return SequenceClassifier(config.input_size, config.hidden_size, config.num_layers, 10,
                              config.dropout, backend)


def _permutation(data) -> list[int]:
    if not isinstance(data, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                             for i in data):
        raise ValueError("expected a list of pixel positions")
    if sorted(data) != list(range(len(data))):
        raise ValueError("the pixel order must hold every position 0..N-1 once")
    return data


def check_saved(config: MnistModel, extras: dict) -> None:
    """A permuted model holds the pixel order it was trained with, one position per step."""
    if config.mode == "permuted":
        order = read_extra(extras, "permutation", _permutation)
        if len(order) != config.steps * config.input_size:
            raise Disagreement("permutation.json", f"{len(order)} positions, but config.json "
                               f"says {config.steps} steps of {config.input_size}")
    elif config.mode == "pixels" and config.input_size != 1:
        raise Disagreement("config.json", f"mode pixels reads one pixel a step, but "
                           f"input_size is {config.input_size}")


MODEL = ModelKind(task=NAME, config=MnistModel, build=build_model, upgrade_v1=upgrade_v1,
                  check=check_saved, export_form=export_form)


def accuracy(model: nn.Module, sequences: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(sequences[start:start + batch_size])
            correct += int((logits.argmax(-1) == labels[start:start + batch_size]).sum())
    return correct / max(1, len(labels))
