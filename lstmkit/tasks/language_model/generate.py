"""`lstmkit generate --model DIR --prime TEXT`: sample text from a language model, printed as it comes.

The prime runs through the LSTM once; then each sampled token is fed back one step at a time with
the state (h, c) kept, so every step costs one LSTM step, not a pass over everything so far.
Sampling: logits / temperature (0 = always the most likely token), optionally only among the
top-k tokens; a seeded generator makes a sample repeatable.
"""
from __future__ import annotations

import sys

import torch

from lstmkit.data.tokenizer import EOS, Tokenizer
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.tasks.language_model.config import GenerateRecipe
from lstmkit.tasks.language_model.model import MODEL
from lstmkit.tasks.language_model.train import encode
from lstmkit.tasks.saved_model import load_model


def sample_next(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator) -> int:
    """One token id from logits (V,)."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if 0 < top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    probabilities = torch.softmax(logits.double(), dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))


def generate_tokens(model, prime_ids: torch.Tensor, length: int, temperature: float = 1.0, top_k: int = 0,
                    seed: int | None = None):
    """Yield `length` token ids after the prime (P,) ids, one LSTM step each, the state carried."""
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
    model.eval()
    with torch.no_grad():
        logits, state = model(prime_ids.view(1, -1))  # (1, P, V), state of the whole prime
        next_logits = logits[0, -1]  # (V,)
        for _ in range(length):
            token = sample_next(next_logits, temperature, top_k, generator)
            yield token
            next_logits, state = model.step(token, state)  # (V,): one step, state kept


def _prime_ids(prime: str | None, vocab: Vocabulary, level: str) -> torch.Tensor:
    if level == "char":
        text = prime if prime else ("\n" if "\n" in vocab.index else vocab.tokens[0])
        return encode(vocab, list(text), level, "--prime")
    tokens = Tokenizer("word")(prime) if prime and prime.strip() else []
    if tokens and prime and not prime.endswith("\n"):
        tokens = tokens[:-1]  # a prime without a final new line has not ended its sentence
    unknown = sorted({t for t in tokens if t not in vocab.index})
    if unknown:
        print(f"note: word(s) not in the vocabulary, read as {vocab.unk}: {' '.join(unknown[:10])}",
              file=sys.stderr)
    return encode(vocab, [EOS] + tokens, level, "--prime")  # a sentence start, as after a line in training


def main(recipe: GenerateRecipe) -> int:
    options = recipe.generate
    loaded = load_model(options.model, MODEL)
    vocab, level = Vocabulary.from_json(loaded.extras["vocab"]), loaded.config.level
    prime_ids = _prime_ids(options.prime, vocab, level)
    if options.prime:
        sys.stdout.write(options.prime if level == "char" else options.prime.rstrip("\n") + " ")
    for token_id in generate_tokens(loaded.model, prime_ids, options.length, options.temperature,
                                    options.top_k, options.seed):
        token = vocab.tokens[token_id]
        if level == "char":
            sys.stdout.write(token)
        else:
            sys.stdout.write("\n" if token == EOS else token + " ")
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
