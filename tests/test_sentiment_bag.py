"""The n-gram bag inside the model reads a text exactly as the fitted bag did: its logits from
padded id batches equal the fitted features (scipy, one row per text) times the weights."""
import numpy as np
import torch

from lstmkit.tasks.sentiment.bag import bag_logits, features


def test_model_bag_equals_the_fitted_features_times_the_weights():
    rng = np.random.default_rng(0)
    buckets, classes = 97, 3  # few buckets: collisions and repeated n-grams happen
    lengths = [1, 2, 3, 9, 14, 5]
    texts = [rng.integers(1, 12, size=n).tolist() for n in lengths]
    texts[4][3:7] = [5, 5, 5, 5]  # a repeated unigram and bigram count once (binary features)
    weight = torch.randn(buckets, classes, dtype=torch.float64)
    bias = torch.randn(classes, dtype=torch.float64)
    ids = torch.zeros(len(texts), max(lengths), dtype=torch.long)
    for row, text in enumerate(texts):
        ids[row, :len(text)] = torch.tensor(text)
    got = bag_logits(ids, torch.tensor(lengths), weight, bias)
    expected = features(texts, buckets) @ weight.numpy() + bias.numpy()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
