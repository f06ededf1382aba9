"""An unmodified nn.LSTM program trains to the same loss with lstmkit.LSTM swapped in."""
import importlib.util
import random
from pathlib import Path

import pytest
import torch

import lstmkit

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "word_language_model.py"


def load_example():
    spec = importlib.util.spec_from_file_location("word_language_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_corpus(path: Path) -> Path:
    """Template sentences: a model that learns the word order beats the uniform guess by far."""
    rng = random.Random(0)
    adjectives, nouns = "big small red old".split(), "cat dog bird fox".split()
    lines = [f"the {rng.choice(adjectives)} {rng.choice(nouns)} sat on a {rng.choice(nouns)} mat"
             for _ in range(300)]
    path.write_text("\n".join(lines) + "\n")
    return path


def train_both(data: Path, backend: str, extra: list[str]):
    example = load_example()
    args = ["--data", str(data), *extra]
    plain = example.main(args)
    with lstmkit.swap_into_torch(backend=backend):
        swapped = example.main(args)
        model_class = torch.nn.LSTM
    assert issubclass(model_class, lstmkit.LSTM)
    assert torch.nn.LSTM is not model_class          # restored after the block
    return plain, swapped


@pytest.mark.parametrize("backend", ["bptt", "native"])
def test_word_language_model_trains_to_the_same_loss(tmp_path, backend):
    plain, swapped = train_both(tiny_corpus(tmp_path / "corpus.txt"), backend, ["--epochs", "2", "--batch-size", "4"])
    assert len(plain) == len(swapped) > 20
    assert plain[-1] < plain[0] - 0.5                  # it learned something
    for a, b in zip(plain, swapped):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a))


@pytest.mark.data
def test_on_penn_treebank(shared_data):
    plain, swapped = train_both(shared_data / "ptb" / "ptb.train.txt", "bptt",
                                ["--max-words", "20000", "--nhid", "32", "--emsize", "32"])
    assert abs(plain[-1] - swapped[-1]) <= 1e-3 * plain[-1]
