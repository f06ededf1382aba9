"""Bag-of-words logistic regression: the baseline every text classifier must beat.

Features are word unigrams and bigrams (n-grams seen in at least `min_freq` training texts),
weighted tf-idf (sublinear tf) and L2-normalised per text: the classic strong linear baseline.
The model is multinomial logistic regression (softmax over classes, so two or more classes work),
fitted full-batch with L-BFGS in torch; features are held sparsely as an EmbeddingBag (sum of the
weight rows of the n-grams present, times their tf-idf). The L2 penalty is chosen on a held-out
tenth of the training set from a small grid, then the model is refitted on all training texts:
the test set is never looked at.
"""
from __future__ import annotations

import math
from collections import Counter

import torch
from torch import nn

L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2)


def ngrams(tokens: list[str], n: int) -> list[str]:
    grams = list(tokens)
    for size in range(2, n + 1):
        grams += [" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1)]
    return grams


class BagOfWordsLogReg:
    def __init__(self, ngram: int = 2, min_freq: int = 2, max_features: int = 200_000,
                 l2: float | None = None, seed: int = 0):
        self.ngram, self.min_freq, self.max_features = ngram, min_freq, max_features
        self.l2, self.seed = l2, seed
        self.features: dict[str, int] = {}
        self.idf: torch.Tensor | None = None
        self.model: nn.EmbeddingBag | None = None

    # ---- features ---------------------------------------------------------------------------
    def _fit_features(self, docs: list[list[str]]) -> None:
        doc_freq = Counter(g for tokens in docs for g in set(ngrams(tokens, self.ngram)))
        kept = [g for g, c in doc_freq.most_common(self.max_features) if c >= self.min_freq]
        self.features = {g: i for i, g in enumerate(kept)}
        n = len(docs)
        self.idf = torch.tensor([math.log((1 + n) / (1 + doc_freq[g])) + 1 for g in kept])  # (F,)

    def _encode(self, docs: list[list[str]]):
        """EmbeddingBag inputs: flat feature ids (nnz,), offsets (N,), tf-idf weights (nnz,)."""
        ids, offsets, weights = [], [], []
        for tokens in docs:
            offsets.append(len(ids))
            counts = Counter(self.features[g] for g in ngrams(tokens, self.ngram) if g in self.features)
            row = [(i, (1 + math.log(c)) * float(self.idf[i])) for i, c in counts.items()]
            norm = math.sqrt(sum(w * w for _, w in row)) or 1.0
            ids += [i for i, _ in row]
            weights += [w / norm for _, w in row]
        return (torch.tensor(ids, dtype=torch.int64), torch.tensor(offsets, dtype=torch.int64),
                torch.tensor(weights, dtype=torch.float32))

    # ---- model ------------------------------------------------------------------------------
    def _train(self, encoded, labels: torch.Tensor, num_classes: int, l2: float) -> nn.EmbeddingBag:
        ids, offsets, weights = encoded
        model = nn.EmbeddingBag(len(self.features), num_classes, mode="sum")  # weight (F, C)
        bias = torch.zeros(num_classes, requires_grad=True)
        nn.init.zeros_(model.weight)
        optimizer = torch.optim.LBFGS([model.weight, bias], lr=1, max_iter=150,
                                      history_size=20, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            logits = model(ids, offsets, per_sample_weights=weights) + bias  # (N, C)
            loss = nn.functional.cross_entropy(logits, labels) + 0.5 * l2 * model.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        model.bias = bias.detach()
        return model

    def fit(self, docs: list[list[str]], labels: list[int], num_classes: int) -> "BagOfWordsLogReg":
        self._fit_features(docs)
        targets = torch.tensor(labels, dtype=torch.int64)
        if self.l2 is None:
            self.l2 = self._choose_l2(docs, targets, num_classes)
        self.model = self._train(self._encode(docs), targets, num_classes, self.l2)
        return self

    def _choose_l2(self, docs, targets, num_classes) -> float:
        order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(self.seed)).tolist()
        cut = max(len(docs) // 10, 1)
        held, kept = order[:cut], order[cut:]
        train_enc = self._encode([docs[i] for i in kept])
        held_enc = self._encode([docs[i] for i in held])
        scores = {}
        for l2 in L2_GRID:
            model = self._train(train_enc, targets[kept], num_classes, l2)
            predicted = self._logits(model, held_enc).argmax(1)
            scores[l2] = (predicted == targets[held]).float().mean().item()
        return max(L2_GRID, key=lambda l2: (scores[l2], l2))  # ties: the stronger penalty

    @staticmethod
    def _logits(model, encoded) -> torch.Tensor:
        ids, offsets, weights = encoded
        with torch.no_grad():
            return model(ids, offsets, per_sample_weights=weights) + model.bias  # (N, C)

    def predict_proba(self, docs: list[list[str]]) -> torch.Tensor:
        """(N, C) class probabilities."""
        return torch.softmax(self._logits(self.model, self._encode(docs)), dim=1)
