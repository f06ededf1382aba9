"""The n-gram bag beside the LSTM: a linear model over the word uni- and bigrams a text contains,
fitted before the LSTM trains; the LSTM then learns what the bag gets wrong.

Why: on a few thousand labelled texts a linear bag of n-grams is hard to beat (the baseline is
one), and an LSTM trained from scratch learns word polarity slowly and loses to it. Fitted first,
the bag brings the polarity of every n-gram; the LSTM adds what a bag cannot see (order, negation
scope, contrast).

The bag (`fit_bag`):
- features: which hashed uni- and bigrams of vocabulary ids a text holds (present or not), the
  same hashing as the model's forward (`bag_buckets`);
- two classes: naive-Bayes log-count ratios scale the features (NBSVM, Wang & Manning 2012), then
  logistic regression; more classes: multinomial logistic regression on the features as they are;
- the L2 penalty is chosen on the validation texts (accuracy, then log-loss), never on test;
- its weights are folded into one table (buckets, C) and a bias, frozen in the model.

The LSTM trains on the bag's logits plus its own (`TrainingOffsets`): for the training texts the
bag's logits come from fits that did not see them (K-fold cross-fitting); the bag's own training
logits are over-confident and would leave the LSTM little to learn. The LSTM's head starts at
zero, so training starts from the bag alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

C_GRID = (0.1, 0.3, 1.0, 3.0)
FOLDS = 5
NB_SMOOTHING = 1.0
_PRIME_A, _PRIME_B = 1_000_003, 7


def bucket_ids(ids: torch.Tensor, lengths: torch.Tensor, buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hashed uni- and bigrams of right-padded ids (B, T): (buckets (B, 2T), valid (B, 2T)); the
    bigram at t is (t, t+1). Written with rolls, not slices, so no size T-1 appears and
    torch.export needs no guard on the length."""
    B, T = ids.shape
    position = torch.arange(T, device=ids.device)[None, :]
    lengths = lengths.to(ids.device)[:, None]
    unigrams = ids % buckets  # (B, T)
    bigrams = (ids * _PRIME_A + ids.roll(-1, dims=1) * _PRIME_B + 1) % buckets  # (B, T)
    return (torch.cat([unigrams, bigrams], dim=1),
            torch.cat([position < lengths, position + 1 < lengths], dim=1))


def present_buckets(ids: torch.Tensor, lengths: torch.Tensor, buckets: int) -> torch.Tensor:
    """(B, 2T) bucket ids with every bucket once per row and -1 elsewhere (binary features)."""
    hashed, valid = bucket_ids(ids, lengths, buckets)
    hashed = torch.where(valid, hashed, torch.full_like(hashed, -1)).sort(dim=1).values
    first = torch.arange(hashed.shape[1], device=hashed.device)[None, :] == 0
    repeat = (hashed == hashed.roll(1, dims=1)) & ~first  # sorted: a repeat follows its first
    return hashed.masked_fill(repeat, -1)


def bag_logits(ids: torch.Tensor, lengths: torch.Tensor, weight: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
    """The bag's logits (B, C): the weights of the n-grams a text holds, summed, plus the bias."""
    present = present_buckets(ids, lengths, weight.shape[0])  # (B, 2T)
    rows = weight[present.clamp(min=0)] * (present >= 0)[:, :, None].to(weight.dtype)  # (B, 2T, C)
    return rows.sum(dim=1) + bias


def features(sequences: list[list[int]], buckets: int):
    """Binary CSR matrix (N, buckets): which hashed n-grams each sequence holds."""
    from scipy.sparse import csr_matrix

    columns, pointers = [], [0]
    for sequence in sequences:
        ids = np.asarray(sequence, dtype=np.int64)
        grams = np.concatenate([ids % buckets,
                                (ids[:-1] * _PRIME_A + ids[1:] * _PRIME_B + 1) % buckets])
        grams = np.unique(grams)
        columns.append(grams)
        pointers.append(pointers[-1] + len(grams))
    data = np.ones(pointers[-1], dtype=np.float64)
    return csr_matrix((data, np.concatenate(columns), np.asarray(pointers)), shape=(len(sequences), buckets))


@dataclass
class FittedBag:
    weight: torch.Tensor       # (buckets, C) logit contribution of each n-gram
    bias: torch.Tensor         # (C,)
    c: float                   # the inverse L2 strength chosen on validation
    valid_accuracy: float


def _nb_ratios(x, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(buckets,) log-count ratios of the positive class (1) against the other; ones for > 2 classes."""
    if num_classes != 2:
        return np.ones(x.shape[1])
    positive = NB_SMOOTHING + np.asarray(x[labels == 1].sum(axis=0)).ravel()
    negative = NB_SMOOTHING + np.asarray(x[labels != 1].sum(axis=0)).ravel()
    return np.log((positive / positive.sum()) / (negative / negative.sum()))


def _fit(x, labels: np.ndarray, num_classes: int, c: float):
    """(weight (buckets, C), bias (C,)) of the model fitted on rows `x`."""
    from scipy.sparse import diags
    from sklearn.linear_model import LogisticRegression

    ratios = _nb_ratios(x, labels, num_classes)
    model = LogisticRegression(C=c, max_iter=3000).fit(x @ diags(ratios), labels)
    coef, intercept = model.coef_, model.intercept_  # (1 or C, F), (1 or C,)
    if coef.shape[0] == 1:  # two classes: one logit difference z; (-z/2, z/2) give its softmax
        coef = np.stack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = np.zeros((x.shape[1], num_classes))
    weight[:, model.classes_] = (coef * ratios[None, :]).T
    bias = np.zeros(num_classes)
    bias[model.classes_] = intercept
    return weight, bias


def _logits(x, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.asarray(x @ weight) + bias  # (N, C)


def _score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, -log-loss): larger is better in both."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float((logits.argmax(1) == labels).mean()), float(log_probs[np.arange(len(labels)), labels].mean())


def fit_bag(train_sequences, train_labels, valid_sequences, valid_labels, num_classes: int,
            buckets: int, seed: int) -> tuple[FittedBag, torch.Tensor]:
    """The bag fitted on the training texts (penalty chosen on validation) and the cross-fitted
    logits (N_train, C) of the training texts for the LSTM's training."""
    x, labels = features(train_sequences, buckets), np.asarray(train_labels)
    x_valid, y_valid = features(valid_sequences, buckets), np.asarray(valid_labels)
    fits = {c: _fit(x, labels, num_classes, c) for c in C_GRID}
    scores = {c: _score(_logits(x_valid, *fit), y_valid) for c, fit in fits.items()}
    c = max(C_GRID, key=lambda value: scores[value])
    offsets = np.zeros((len(labels), num_classes))
    order = np.random.RandomState(seed).permutation(len(labels))
    for k in range(FOLDS):
        held = order[k::FOLDS]
        kept = np.setdiff1d(order, held)
        if len(np.unique(labels[kept])) < 2:  # too few texts to cross-fit: the full fit's logits
            offsets[held] = _logits(x[held], *fits[c])
            continue
        offsets[held] = _logits(x[held], *_fit(x[kept], labels[kept], num_classes, c))
    weight, bias = fits[c]
    return (FittedBag(torch.from_numpy(weight).float(), torch.from_numpy(bias).float(), c,
                      scores[c][0]), torch.from_numpy(offsets).float())
