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


def _classifier(max_len):
    from lstmkit.tasks.sentiment.model import SentimentClassifier

    torch.manual_seed(0)
    model = SentimentClassifier(20, 2, embedding_dim=6, hidden_size=5, bag_buckets=97,
                                max_len=max_len).eval()
    model.bag_weight.normal_()
    model.bag_bias.normal_()
    return model


def test_the_lstm_reads_the_first_max_len_tokens_and_the_bag_the_whole_text():
    model = _classifier(max_len=5)
    ids = torch.randint(1, 20, (3, 12))
    lengths = torch.tensor([12, 4, 9])
    with torch.no_grad():
        got = model(ids, lengths)
        lstm_alone = model(ids[:, :5], lengths.clamp(max=5), bag=torch.zeros(3, 2))
        expected = lstm_alone + bag_logits(ids, lengths, model.bag_weight, model.bag_bias)
    torch.testing.assert_close(got, expected)


def test_export_keeps_the_length_dynamic_on_both_sides_of_max_len():
    from torch.export import Dim, export

    model = _classifier(max_len=5)
    example = (torch.randint(1, 20, (2, 7)), torch.tensor([7, 3]))
    batch = Dim("batch", max=64)
    program = export(model, example, dynamic_shapes=({0: batch, 1: Dim("steps", max=1000)},
                                                     {0: batch}))
    for steps, lengths in ((3, [3, 1, 2]), (12, [12, 6])):
        ids = torch.randint(1, 20, (len(lengths), steps))
        with torch.no_grad():
            torch.testing.assert_close(program.module()(ids, torch.tensor(lengths)),
                                       model(ids, torch.tensor(lengths)))
