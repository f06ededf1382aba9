"""Bag-of-words logistic regression (scikit-learn): the baseline every text classifier must beat.

Features are word unigrams and bigrams seen in at least `min_freq` training texts, weighted tf-idf
(sublinear tf, smoothed idf) and L2-normalised per text: the classic strong linear baseline. The
model is multinomial logistic regression (two or more classes). Its L2 penalty is chosen on a
held-out tenth of the training set from a small grid, then it is refitted on all training texts:
the test set is never looked at.
"""
from __future__ import annotations

import numpy as np
import torch

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
        self.vectorizer = self.model = None
        self.num_classes = 0

    def _train(self, features, labels: np.ndarray, l2: float):
        from sklearn.linear_model import LogisticRegression

        # The objective is a softmax over the classes: mean(losses) + l2 * |W|^2 / 2 with one
        # weight column per class. sklearn minimises C * sum(losses) + |w|^2 / 2, with a single
        # column w = W_1 - W_0 for two classes, whose optimum has |W|^2 = |w|^2 / 2: hence C.
        columns_per_weight = 2 if self.num_classes == 2 else 1
        model = LogisticRegression(C=columns_per_weight / (l2 * features.shape[0]), tol=1e-6,
                                   max_iter=1000)
        return model.fit(features, labels)

    def fit(self, docs: list[list[str]], labels: list[int], num_classes: int) -> "BagOfWordsLogReg":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.num_classes = num_classes
        self.vectorizer = TfidfVectorizer(analyzer=lambda tokens: ngrams(tokens, self.ngram),
                                          min_df=self.min_freq, max_features=self.max_features,
                                          sublinear_tf=True, dtype=np.float64)
        features = self.vectorizer.fit_transform(docs)  # (N, F) sparse
        targets = np.asarray(labels)
        if self.l2 is None:
            self.l2 = self._choose_l2(features, targets)
        self.model = self._train(features, targets, self.l2)
        return self

    def _choose_l2(self, features, targets: np.ndarray) -> float:
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(self.seed)).numpy()
        cut = max(len(targets) // 10, 1)
        held, kept = order[:cut], order[cut:]
        scores = {}
        for l2 in L2_GRID:
            predicted = self._train(features[kept], targets[kept], l2).predict(features[held])
            scores[l2] = float((predicted == targets[held]).mean())
        return max(L2_GRID, key=lambda l2: (scores[l2], l2))  # ties: the stronger penalty

    def predict_proba(self, docs: list[list[str]]) -> torch.Tensor:
        """(N, C) class probabilities (classes never seen in training get 0)."""
        seen = self.model.predict_proba(self.vectorizer.transform(docs))  # (N, seen classes)
        probabilities = np.zeros((seen.shape[0], self.num_classes))
        probabilities[:, self.model.classes_] = seen
        return torch.from_numpy(probabilities).float()
