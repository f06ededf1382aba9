"""Language model: tokens, vocabulary, stateful TBPTT batching, training through the CLI."""
import json
import math

import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.streams import batchify, bptt_chunks
from lstmkit.data.tokenizer import EOS, Tokenizer
from lstmkit.data.vocabulary import UNK, Vocabulary
from lstmkit.errors import UsageError
from lstmkit.tasks.language_model.model import LanguageModel
from lstmkit.tasks.language_model.train import StatefulChunks, build_vocabulary, encode


def test_char_and_word_tokens_round_trip():
    text = "to be\nor not\n"
    chars = Tokenizer("char")
    assert chars.detokenize(chars(text)) == text
    words = Tokenizer("word")
    assert words(text) == ["to", "be", EOS, "or", "not", EOS]
    assert words.detokenize(words(text)) == "to be\nor not\n"


def test_vocabulary_maps_unknown_words_to_unk_and_refuses_unknown_chars():
    words = build_vocabulary(Tokenizer("word")("a b a\nc a\n"), "word")
    assert words.tokens[0] == "a" and UNK in words.index  # most frequent first, <unk> always present
    assert encode(words, ["a", "zebra"], "word", "x").tolist() == [words.index["a"], words.index[UNK]]
    chars = build_vocabulary(list("abcab"), "char")
    assert chars.tokens == ["a", "b", "c"]
    with pytest.raises(UsageError, match="1 character\\(s\\) the model never saw: 'z'"):
        encode(chars, list("abz"), "char", "the text")
    restored = Vocabulary.from_json(json.loads(json.dumps(chars.to_json())))
    assert restored.tokens == chars.tokens and restored.unk is None  # no unknown characters


def test_streams_continue_from_chunk_to_chunk():
    ids = torch.arange(103)
    streams = batchify(ids, 4)  # (4, 25): the tail that does not fill a row is dropped
    assert streams.shape == (4, 25) and streams[1, 0] == 25
    chunks = list(bptt_chunks(streams, 7))
    inputs = torch.cat([x for x, _ in chunks], dim=1)
    targets = torch.cat([y for _, y in chunks], dim=1)
    assert torch.equal(inputs, streams[:, :-1]) and torch.equal(targets, streams[:, 1:])
    assert [x.size(1) for x, _ in chunks] == [7, 7, 7, 3]
    with pytest.raises(UsageError, match="too few for --batch-size 64"):
        batchify(torch.arange(100), 64)


def test_carried_state_makes_chunks_equal_one_pass():
    torch.manual_seed(0)
    model = LanguageModel(vocab_size=11, embed_size=6, hidden_size=8, num_layers=2)
    streams = torch.randint(0, 11, (3, 41))  # (B, L)
    chunks = StatefulChunks(streams, bptt=10, per_epoch=2)
    model.train()
    losses = []
    for epoch in range(2):  # two short epochs: the loop restarts state as None, the task carries it on
        state = None
        for batch in chunks.epoch(epoch):
            out = chunks.step(model, batch, state)
            state = out.state
            losses.append(out.loss.item() * out.size)
    logits, _ = model(streams[:, :40])  # one pass over the same 40 steps
    whole = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), streams[:, 1:41].reshape(-1), reduction="sum")
    assert sum(losses) == pytest.approx(whole.item(), rel=1e-5)
    first_of_next_pass = next(iter(chunks.epoch(2)))
    assert first_of_next_pass[2] is False  # back at the start of the text: no state to continue


def test_tied_weights_share_one_matrix():
    model = LanguageModel(vocab_size=20, embed_size=16, hidden_size=16, num_layers=1, tie_weights=True)
    assert model.head.weight is model.embedding.weight
    with pytest.raises(UsageError, match="--tie-weights needs --embedding-dim == --hidden-size"):
        LanguageModel(vocab_size=20, embed_size=8, hidden_size=16, num_layers=1, tie_weights=True)


def train_lm(tmp_path, text, *extra, level="char"):
    path = tmp_path / "text.txt"
    path.write_text(text)
    out = tmp_path / "run"
    argv = ["train", "lm", "--text", str(path), "--level", level, "--hidden-size", "32", "--num-layers", "1",
            "--batch-size", "4", "--bptt", "16", "--out", str(out), "--no-progress", *extra]
    return main(argv), out


def test_char_lm_learns_a_repeating_text_and_generates_it(tmp_path, capsys):
    status, out = train_lm(tmp_path, "abcd" * 300, "--epochs", "3", "--lr", "0.03", "--embed-size", "8")
    assert status == 0
    summary = json.loads((out / "lm_metrics.json").read_text())
    assert summary["best_valid_loss"] < 0.1 * math.log(4)  # far below guessing among 4 characters
    assert [point["epoch"] for point in summary["curve"]] == [1, 2, 3]
    capsys.readouterr()
    assert main(["generate", "--model", str(out), "--prime", "ab", "--length", "10", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "abcdabcdabcd\n"


def test_word_lm_with_validation_and_test_text(tmp_path, capsys):
    sentence = "the cat sat on the mat\nthe dog sat on the log\n"
    (tmp_path / "valid.txt").write_text(sentence)
    (tmp_path / "test.txt").write_text("the cat sat on the log\n")
    status, out = train_lm(tmp_path, sentence * 40, "--epochs", "1", "--valid-text", str(tmp_path / "valid.txt"),
                           "--test-text", str(tmp_path / "test.txt"), level="word")
    assert status == 0
    assert "perplexity" in capsys.readouterr().out
    summary = json.loads((out / "lm_metrics.json").read_text())
    assert summary["level"] == "word" and summary["test_loss"] > 0
    vocab = json.loads((out / "best" / "vocab.json").read_text())
    model = json.loads((out / "best" / "config.json").read_text())["model"]
    assert model["level"] == "word" and EOS in vocab["tokens"]


def test_time_budget_stops_training(tmp_path, capsys):
    status, out = train_lm(tmp_path, "hello world\n" * 200, "--epochs", "50", "--chunks-per-epoch", "2",
                           "--max-minutes", "0.0001")
    assert status == 0
    assert "--max-minutes 0.0001 reached" in capsys.readouterr().out
    assert len(json.loads((out / "lm_metrics.json").read_text())["curve"]) < 50


def test_empty_or_missing_text_exits_2(tmp_path, capsys):
    status, _ = train_lm(tmp_path, "  \n\n")
    assert status == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["train", "lm", "--text", str(tmp_path / "none.txt"), "--out", str(tmp_path / "r")]) == 2
    assert "text file not found" in capsys.readouterr().err


def test_validation_characters_unseen_in_training_exit_2(tmp_path, capsys):
    (tmp_path / "valid.txt").write_text("xyz")
    status, _ = train_lm(tmp_path, "abab" * 50, "--valid-text", str(tmp_path / "valid.txt"))
    assert status == 2
    assert "never saw" in capsys.readouterr().err


def test_tiny_shakespeare_vocabulary(shared_data):
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    assert len(build_vocabulary(Tokenizer("char")(text), "char")) == 65


def test_adaptive_softmax_loss_matches_its_log_probabilities():
    torch.manual_seed(0)
    model = LanguageModel(vocab_size=30, embed_size=8, hidden_size=16, num_layers=1, softmax="adaptive",
                          cutoffs=(5, 15)).eval()
    tokens, targets = torch.randint(0, 30, (2, 6)), torch.randint(0, 30, (2, 6))
    loss, _ = model(tokens, None, targets)
    log_probs, _ = model(tokens)  # (B, T, V), a proper distribution over all 30 words
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 6), atol=1e-5)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    assert loss.item() == pytest.approx(-picked.mean().item(), rel=1e-5)
    with pytest.raises(UsageError, match="--cutoffs must increase"):
        LanguageModel(30, 8, 8, 1, softmax="adaptive", cutoffs=(15, 5))


def test_word_lm_with_adaptive_softmax_trains_and_generates(tmp_path, capsys):
    text = "the cat sat on the mat\nthe dog sat on the log\na bird flew over the house\n" * 30
    status, out = train_lm(tmp_path, text, "--epochs", "1", "--softmax", "adaptive", "--cutoffs", "4,8",
                           level="word")
    assert status == 0
    capsys.readouterr()
    assert main(["generate", "--model", str(out), "--prime", "the", "--length", "6", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("the ")
    status, _ = train_lm(tmp_path, "abc" * 100, "--softmax", "adaptive")
    assert status == 2
    assert "--softmax adaptive is for word level" in capsys.readouterr().err
