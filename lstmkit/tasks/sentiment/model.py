"""The sentiment classifier: embedding -> (bi)LSTM -> pooling -> linear, and an ensemble of them.

Each choice has a reason:
- padded batches run with their lengths, as if packed, so the LSTM never reads padding;
- no hidden state is carried between batches: reviews are unrelated, every sequence starts from zero;
- pooling over time (max and/or mean of the outputs) instead of only the last step: on a few
  thousand reviews a sentiment cue anywhere in a long text reaches the classifier in one step;
- softmax over C classes (cross-entropy), so two or more classes work alike.

Beside the LSTM, a linear bag of hashed word unigrams and bigrams can add its logits:
- `bag_buckets > 0` (the default recipe): the bag is fitted first and frozen (bag.py: naive-Bayes
  weighted logistic regression over which n-grams a text holds); the LSTM learns what it misses;
- `ngram_buckets > 0`: a bag of n-gram counts trained jointly with the LSTM (fastText's idea,
  "wide and deep").
On a few thousand long reviews a linear n-gram model is hard to beat; the LSTM then learns what
the bag misses (order, negation scope) instead of relearning word polarity from scratch. The
report names such a model "BiLSTM + n-gram bag", not "BiLSTM", and scores the bag alone too.
"""
from __future__ import annotations

import math

import torch
from torch import nn

import lstmkit
from lstmkit.data.labels import LabelSet
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.tasks.saved_model import Disagreement, ModelKind, agree, read_extra
from lstmkit.tasks.sentiment.bag import bag_logits, bucket_ids
from lstmkit.tasks.sentiment.config import NAME, POOLINGS, SentimentModel, upgrade_v1
from lstmkit.tasks.sentiment.export import export_form, from_exported

PAD_ID = 0  # the vocabulary puts its padding token first


class SentimentClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 128,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.5, embedding_dropout: float = 0.2, pooling: str = "max",
                 backend: str = "auto", ngram_buckets: int = 0, bag_buckets: int = 0,
                 max_len: int | None = None):
        super().__init__()
        self.max_len = max_len  # the LSTM reads at most the first max_len tokens; the bag all
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r}: expected one of {POOLINGS}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.lstm = lstmkit.LSTM(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True,
                                 dropout=dropout if num_layers > 1 else 0.0,
                                 bidirectional=bidirectional, backend=backend)
        features = hidden_size * (2 if bidirectional else 1) * (2 if pooling == "max+mean" else 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(features, num_classes)
        self.ngram_buckets = ngram_buckets
        self.ngrams = nn.Embedding(ngram_buckets, num_classes) if ngram_buckets else None
        if self.ngrams is not None:
            nn.init.zeros_(self.ngrams.weight)  # starts as "no opinion", like a fresh logreg
        # The fitted bag is frozen: buffers, saved with the weights, never trained.
        self.register_buffer("bag_weight", torch.zeros(bag_buckets, num_classes) if bag_buckets
                             else None)  # (buckets, C)
        self.register_buffer("bag_bias", torch.zeros(num_classes) if bag_buckets else None)  # (C,)

    def ngram_logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Sum of the hashed uni- and bigram weights over each text / sqrt(count): (B, C). The
        n-grams are hashed as the fitted bag hashes them (`bucket_ids`)."""
        buckets, valid = bucket_ids(ids, lengths, self.ngram_buckets)  # (B, 2T), (B, 2T)
        mask = valid.to(self.ngrams.weight.dtype)
        summed = (self.ngrams(buckets) * mask[:, :, None]).sum(dim=1)  # (B, C)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1).sqrt()

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor):
        """The LSTM over the (dropped-out) embeddings of a padded batch, run as if packed (it never
        reads past `lengths`, which `lstm_part` clamps to max_len): outputs (B, T', dirs*H), zero
        past each text's end, and h_n."""
        x = self.embedding_dropout(self.embedding(ids))  # (B, T, E)
        y, (h_n, _) = self.lstm(x, lengths=lengths)
        return y, h_n

    def bag(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The fitted bag's logits (B, C) alone."""
        return bag_logits(ids, lengths, self.bag_weight, self.bag_bias)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor,
                bag: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) right-padded, lengths (B,) -> logits (B, C). `bag`: the fitted bag's logits
        to use instead of its own (cross-fitted ones while the LSTM trains)."""
        all_ids, all_lengths = ids, lengths
        ids, lengths = self.lstm_part(ids, lengths)
        y, h_n = self.encode(ids, lengths)
        if self.pooling == "last":
            # h_n (layers*dirs, B, H): the top layer's final forward (and backward) states.
            dirs = 2 if self.lstm.bidirectional else 1
            features = torch.cat(list(h_n[-dirs:]), dim=1)  # (B, dirs*H)
        else:
            lengths = lengths.to(y.device)
            mask = torch.arange(y.shape[1], device=y.device)[None, :] < lengths[:, None]  # (B, T)
            pooled = []
            if "max" in self.pooling:
                pooled.append(y.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1))  # (B, D)
            if "mean" in self.pooling:
                pooled.append(y.sum(dim=1) / lengths[:, None].to(y.dtype))  # (B, D)
            features = torch.cat(pooled, dim=1)
        logits = self.head(self.dropout(features))  # (B, C)
        if self.ngrams is not None:
            logits = logits + self.ngram_logits(ids, lengths)
        if self.bag_weight is not None:
            logits = logits + (bag if bag is not None else self.bag(all_ids, all_lengths))
        return logits

    def lstm_part(self, ids: torch.Tensor, lengths: torch.Tensor):
        """(ids, lengths) of the tokens the LSTM reads: the first max_len of each text. Lengths
        clamped, not ids sliced: packing skips the rest in eager, masks do in an exported graph,
        and a slice would fix the exported length at max_len."""
        return ids, (lengths if self.max_len is None else lengths.clamp(max=self.max_len))


class SentimentEnsemble(nn.Module):
    """Classifiers trained from the same start with different seeds (shuffles, dropout masks),
    predicting the mean of their class probabilities. On a few thousand reviews one model's errors
    depend on its seed by a point or more; the mean of a few cancels much of that.

    Returns log mean probabilities: used as logits, their softmax is that mean and their argmax
    its class, so the training, evaluation and prediction code treat it like one classifier."""

    def __init__(self, members: list[SentimentClassifier]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(ids, lengths).float(), dim=1)
                                 for m in self.members])  # (K, B, C)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def build_classifier(config: SentimentModel, backend: str = "auto") -> SentimentClassifier:
    """One untrained classifier as `config` describes it, running on engine `backend`."""
    return SentimentClassifier(config.vocab_size, config.num_classes, config.embedding_dim,
                               config.hidden_size, config.num_layers, config.bidirectional,
                               config.dropout, config.embedding_dropout, config.pooling, backend,
                               config.ngram_buckets, config.bag_buckets, config.max_len)


def build_model(config: SentimentModel, backend: str = "auto") -> nn.Module:
    """The model a checkpoint describes: one classifier, or an ensemble of `config.ensemble`."""
    if config.ensemble == 1:
        return build_classifier(config, backend)
    return SentimentEnsemble([build_classifier(config, backend) for _ in range(config.ensemble)])


def check_saved(config: SentimentModel, extras: dict) -> None:
    """The vocabulary and labels a checkpoint holds agree with its config."""
    vocab = read_extra(extras, "vocab", Vocabulary.from_json)
    agree(len(vocab), config.vocab_size, "vocab.json", "tokens", "vocab_size")
    if vocab.pad_index != PAD_ID:
        raise Disagreement("vocab.json", f"the padding token must come first (id {PAD_ID})")
    labels = read_extra(extras, "labels", LabelSet.from_json)
    agree(len(labels), config.num_classes, "labels.json", "labels", "num_classes")


MODEL = ModelKind(task=NAME, config=SentimentModel, build=build_model, upgrade_v1=upgrade_v1,
                  check=check_saved, export_form=export_form, from_exported=from_exported)
