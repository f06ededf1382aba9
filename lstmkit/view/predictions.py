"""Running predictions for the page, from a model's outputs at every step (task-independent)."""
from __future__ import annotations

import numpy as np
import torch

from lstmkit.view.content import RunningPrediction

TOP_TOKENS = 5  # next-token candidates shown on hover


class NextTokenCollector:
    """Next-token predictions of a language model fed in chunks: ``add`` each chunk's scores (T, V)
    (logits or log-probabilities), then ``prediction`` gives the top tokens and the entropy."""

    def __init__(self, labels: list[str], top: int = TOP_TOKENS) -> None:
        self.labels, self.top = labels, min(top, len(labels))
        self.ids: list[np.ndarray] = []
        self.probs: list[np.ndarray] = []
        self.entropy: list[np.ndarray] = []

    def add(self, scores: torch.Tensor) -> None:
        log_p = torch.log_softmax(scores.detach().double(), dim=-1)  # (T, V); log-probabilities stay put
        probs, ids = log_p.exp().topk(self.top, dim=-1)  # (T, k)
        self.ids.append(ids.numpy())
        self.probs.append(probs.float().numpy())
        self.entropy.append(torch.special.entr(log_p.exp()).sum(-1).numpy())  # (T,) nats

    def prediction(self) -> RunningPrediction:
        return RunningPrediction("next", np.concatenate(self.probs), np.concatenate(self.entropy),
                                 "entropy of the next-token distribution", self.labels,
                                 ids=np.concatenate(self.ids))


def class_prediction(logits: torch.Tensor, labels: list[str]) -> RunningPrediction:
    """logits (T, C) at each step -> class probabilities; the signal is the probability of the
    class the model predicts at the last step (how its final answer builds up)."""
    probs = torch.softmax(logits.detach().double(), dim=-1)  # (T, C)
    final = int(probs[-1].argmax())
    return RunningPrediction("classes", probs.float().numpy(), probs[:, final].numpy(),
                             f"P({labels[final]})", list(labels))


def forecast_prediction(forecasts: np.ndarray) -> RunningPrediction:
    """forecasts (T, horizon) in the series' units, NaN where the model cannot forecast yet; the
    signal is the forecast one step ahead."""
    forecasts = np.asarray(forecasts, dtype=np.float64)
    return RunningPrediction("forecast", forecasts.astype(np.float32), forecasts[:, 0], "the 1-step forecast")
