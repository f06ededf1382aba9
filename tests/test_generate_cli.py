"""`lstmkit generate`: one-step streaming with the state kept, sampling options, seeds, bad input."""
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.recipe import to_json
from lstmkit.tasks.language_model.config import NAME, LMModel
from lstmkit.tasks.language_model.generate import generate_tokens, sample_next
from lstmkit.tasks.language_model.model import LanguageModel
from lstmkit.tasks.language_model.train import build_vocabulary
from lstmkit.training.checkpoint import save_checkpoint


def small_model(vocab_size=7, seed=0):
    torch.manual_seed(seed)
    return LanguageModel(vocab_size, embed_size=5, hidden_size=12, num_layers=2)


@pytest.fixture
def char_model_dir(tmp_path):
    """An untrained but complete char-level checkpoint (weights, config, vocabulary)."""
    vocab = build_vocabulary(list("ROMEO: abc\n"), "char")
    model = small_model(len(vocab))
    config = LMModel(vocab_size=len(vocab), level="char", embedding_dim=5, hidden_size=12, num_layers=2)
    save_checkpoint(tmp_path / "run" / "best", task=NAME, model_config=to_json(config),
                    state_dict=model.state_dict(), extras={"vocab": vocab.to_json()})
    return tmp_path / "run"


def test_one_step_generation_equals_rerunning_the_whole_sequence():
    model = small_model().eval()
    prime = torch.tensor([1, 2, 3])
    streamed = list(generate_tokens(model, prime, 12, temperature=0))
    sequence = prime.tolist()
    with torch.no_grad():
        for _ in range(12):  # the slow way: no carried state, the full text every step
            logits, _ = model(torch.tensor([sequence]))
            sequence.append(int(logits[0, -1].argmax()))
    assert streamed == sequence[3:]


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_model_step_scores_equal_forward(softmax):
    """LanguageModel.step gives what forward gives at each step: logits (full softmax) or
    log-probabilities (adaptive), with the state carried."""
    torch.manual_seed(0)
    model = LanguageModel(20, embed_size=5, hidden_size=12, num_layers=2, softmax=softmax,
                          cutoffs=(10,) if softmax == "adaptive" else ()).eval()
    tokens = [3, 1, 4, 1, 5, 9]
    with torch.no_grad():
        want, _ = model(torch.tensor([tokens]))  # (1, T, V)
        state = None
        for t, token in enumerate(tokens):
            scores, state = model.step(token, state)
            assert scores.shape == (20,)
            assert torch.allclose(scores, want[0, t], atol=1e-5), t


def test_top_k_and_temperature():
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0])
    picks = {sample_next(logits, 1.0, 2, generator) for _ in range(200)}
    assert picks == {1, 2}  # only the two most likely tokens
    assert {sample_next(logits, 1.0, 1, generator) for _ in range(20)} == {1}
    assert sample_next(logits, 0.0, 0, generator) == 1  # temperature 0: greedy
    cold = [sample_next(logits, 0.02, 0, generator) for _ in range(100)]
    assert cold.count(1) > 90  # low temperature sharpens towards the best token


def test_generate_cli_is_seeded_and_streams_the_prime(char_model_dir, capsys):
    argv = ["generate", "--model", str(char_model_dir), "--prime", "ROMEO:", "--length", "40", "--seed", "3",
            "--top-k", "4", "--temperature", "0.9"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 40 + 1
    assert main(argv[:-5] + ["4", "--top-k", "4", "--temperature", "0.9"]) == 0  # another seed
    assert capsys.readouterr().out != first


@pytest.mark.parametrize("extra, message", [
    (["--prime", "JULIET:"], "--prime has 5 character(s) the model never saw"),
    (["--temperature", "-1"], "--temperature must be >= 0"),
    (["--top-k", "-2"], "--top-k must be >= 0"),
    (["--length", "-5"], "--length must be >= 0"),
])
def test_generate_bad_input_exits_2(char_model_dir, capsys, extra, message):
    assert main(["generate", "--model", str(char_model_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_generate_from_a_folder_without_a_model_exits_2(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path)]) == 2
    assert "no checkpoint here" in capsys.readouterr().err


def test_word_level_prime_with_unknown_words(tmp_path, capsys):
    vocab = build_vocabulary(Tokenizer("word")("the cat sat\nthe dog sat\n"), "word")
    model = small_model(len(vocab))
    config = LMModel(vocab_size=len(vocab), level="word", embedding_dim=5, hidden_size=12, num_layers=2)
    save_checkpoint(tmp_path / "w", task=NAME, model_config=to_json(config),
                    state_dict=model.state_dict(), extras={"vocab": vocab.to_json()})
    assert main(["generate", "--model", str(tmp_path / "w"), "--prime", "the zebra", "--length", "5",
                 "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("the zebra ")
    assert "read as <unk>: zebra" in captured.err


def test_a_reader_that_leaves_ends_generate_quietly(tmp_path_factory):
    """`lstmkit generate ... | head`: exit 141 (SIGPIPE's status), no traceback on stderr."""
    import subprocess
    import sys

    from small_models import trained_runs

    run = trained_runs(tmp_path_factory)["lm"]
    child = subprocess.Popen([sys.executable, "-m", "lstmkit", "generate", "--model", str(run),
                              "--length", "400000", "--seed", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(child.stdout.read(10)) == 10
    child.stdout.close()  # the reader leaves, as `head -c 10` does
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
