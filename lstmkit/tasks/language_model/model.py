"""The language model: embedding -> lstmkit.LSTM -> output layer (full or adaptive softmax)."""
from __future__ import annotations

import math

import torch
from torch import nn

from lstmkit.errors import UsageError
from lstmkit.nn.layers import LSTM
from lstmkit.tasks.language_model.config import NAME, LMModel, upgrade_v1
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.tasks.language_model.export import ExportedLanguageModel, export_form
from lstmkit.tasks.saved_model import Disagreement, ModelKind, agree, read_extra


class LanguageModel(nn.Module):
    """tokens (B, T) -> scores (B, T, V) (logits, or log-probabilities with the adaptive softmax),
    with the LSTM state passed in and out; given targets (B, T), the mean loss instead of scores.

    The adaptive softmax (Grave et al. 2017) gives frequent words a full output layer and rare words
    smaller clustered ones: on a 10k-word vocabulary it cuts the cost of the output layer, which
    otherwise dominates a word-level model on a CPU, several times over. It needs ids sorted by
    falling frequency, which the word vocabulary provides.
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0, tie_weights: bool = False, softmax: str = "full",
                 cutoffs: tuple[int, ...] = (), backend: str = "auto"):
        super().__init__()
        self.vocab_size, self.softmax = vocab_size, softmax
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.dropout = nn.Dropout(dropout)
        self.lstm = LSTM(embed_size, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0, backend=backend)
        if softmax == "adaptive":
            if tie_weights:
                raise UsageError("--tie-weights works with --softmax full only")
            if not cutoffs or list(cutoffs) != sorted(set(cutoffs)) or not 0 < cutoffs[0] \
                    or cutoffs[-1] >= vocab_size:
                raise UsageError(f"--cutoffs must increase strictly within 1..{vocab_size - 1}, "
                                 f"got {list(cutoffs)}")
            self.head = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, list(cutoffs), div_value=4.0)
        elif softmax == "full":
            self.head = nn.Linear(hidden_size, vocab_size)
        else:
            raise UsageError(f"--softmax {softmax!r} is not known; allowed: full, adaptive")
        if tie_weights:
            # Press & Wolf 2017: one matrix for input and output embeddings (fewer parameters, lower ppl).
            if embed_size != hidden_size:
                raise UsageError(f"--tie-weights needs --embedding-dim == --hidden-size, got {embed_size} "
                                 f"and {hidden_size}")
            self.head.weight = self.embedding.weight

    def forward(self, tokens: torch.Tensor, state=None, targets: torch.Tensor | None = None):
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        outputs, state = self.lstm(embedded, state)  # (B, T, H), ((L, B, H), (L, B, H))
        outputs = self.dropout(outputs)
        if targets is None:
            return self._scores(outputs), state  # (B, T, V)
        if self.softmax == "adaptive":
            return self.head(outputs.reshape(-1, outputs.size(-1)), targets.reshape(-1)).loss, state
        logits = self.head(outputs)  # (B, T, V)
        loss = nn.functional.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return loss, state

    def step(self, token: int, state=None):
        """Scores (V,) of the token after ``token`` (what ``forward`` gives for one step: logits, or
        log-probabilities with the adaptive softmax) and the new state: one ``LSTM.step`` (the cpu
        engine's fused step under no_grad), for streaming generation."""
        token_ids = torch.tensor([token], device=self.embedding.weight.device)  # (1,)
        embedded = self.dropout(self.embedding(token_ids))  # (1, E)
        output, state = self.lstm.step(embedded, state)  # (1, H)
        return self._scores(self.dropout(output))[0], state

    def _scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., V): logits, or log-probabilities with the adaptive softmax."""
        if self.softmax == "adaptive":
            flat = outputs.reshape(-1, outputs.size(-1))
            return self.head.log_prob(flat).view(*outputs.shape[:-1], self.vocab_size)
        return self.head(outputs)


def build_model(config: LMModel, backend: str = "auto") -> LanguageModel:
    """An untrained model as `config` describes it, running on engine `backend`."""
    return LanguageModel(config.vocab_size, config.embedding_dim, config.hidden_size,
                         config.num_layers, config.dropout, config.tie_weights, config.softmax,
                         tuple(config.cutoffs), backend)


def check_saved(config: LMModel, extras: dict) -> None:
    """The vocabulary a checkpoint holds agrees with its config."""
    vocab = read_extra(extras, "vocab", Vocabulary.from_json)
    agree(len(vocab), config.vocab_size, "vocab.json", "tokens", "vocab_size")
    if config.embedding_dim is None:
        raise Disagreement("config.json", "setting 'embedding_dim' must be a whole number, got null")


MODEL = ModelKind(task=NAME, config=LMModel, build=build_model, upgrade_v1=upgrade_v1,
                  check=check_saved, export_form=export_form, from_exported=ExportedLanguageModel)


def describe_loss(nats: float, level: str) -> str:
    if level == "char":
        return f"{nats:.4f} nats/char ({nats / math.log(2):.3f} bits/char)"
    return f"{nats:.4f} nats/word (perplexity {math.exp(min(nats, 50)):.2f})"
