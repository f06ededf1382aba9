"""`lstmkit generate --model DIR --prime TEXT`: sample text from a language model, printed as it comes.

The prime runs through the LSTM once; then each sampled token is fed back one step at a time with
the state (h, c) kept, so every step costs one LSTM step, not a pass over everything so far.
Sampling: logits / temperature (0 = always the most likely token), optionally only among the
top-k tokens; a seeded generator makes a sample repeatable.
"""
from __future__ import annotations

import sys

import torch

from lstmkit.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="sample text from a trained language model",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True,
                        help="run folder of `lstmkit train lm` (uses its best/) or a checkpoint directory")
    parser.add_argument("--prime", default=None, help="text to start from (default: a new line)")
    parser.add_argument("--length", type=int, default=500, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="> 1 more varied, < 1 safer, 0 greedy")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0: all)")
    parser.add_argument("--seed", type=int, default=None, help="seed for a repeatable sample")
    parser.set_defaults(func=main)


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


def _check_args(args) -> None:
    if args.length < 0:
        raise UsageError(f"--length must be >= 0, got {args.length}")
    if not args.temperature >= 0:
        raise UsageError(f"--temperature must be >= 0 (0 means greedy), got {args.temperature}")
    if args.top_k < 0:
        raise UsageError(f"--top-k must be >= 0 (0 means no limit), got {args.top_k}")


def _prime_ids(prime: str | None, vocab) -> torch.Tensor:
    from lstmkit.data.corpus import EOS, UNK, tokenize

    if vocab.level == "char":
        text = prime if prime else ("\n" if "\n" in vocab.stoi else vocab.itos[0])
        return vocab.encode(list(text), what="--prime")
    tokens = tokenize(prime, "word") if prime and prime.strip() else []
    if tokens and prime and not prime.endswith("\n"):
        tokens = tokens[:-1]  # a prime without a final new line has not ended its sentence
    unknown = sorted({t for t in tokens if t not in vocab.stoi})
    if unknown:
        print(f"note: word(s) not in the vocabulary, read as {UNK}: {' '.join(unknown[:10])}", file=sys.stderr)
    return vocab.encode([EOS] + tokens, what="--prime")  # a sentence start, as after a line in training


def main(args) -> int:
    from lstmkit.checkpoint import load_checkpoint, run_or_checkpoint_dir
    from lstmkit.data.corpus import EOS, TokenVocabulary
    from lstmkit.tasks.language_model import NAME, model_from_config

    _check_args(args)
    checkpoint = load_checkpoint(run_or_checkpoint_dir(args.model), task=NAME)
    vocab = TokenVocabulary.from_dict(checkpoint.extras["vocab"])
    model = model_from_config(checkpoint.model_config)
    model.load_state_dict(checkpoint.state_dict)
    prime_ids = _prime_ids(args.prime, vocab)
    if args.prime:
        sys.stdout.write(args.prime if vocab.level == "char" else args.prime.rstrip("\n") + " ")
    for token_id in generate_tokens(model, prime_ids, args.length, args.temperature, args.top_k, args.seed):
        token = vocab.itos[token_id]
        if vocab.level == "char":
            sys.stdout.write(token)
        else:
            sys.stdout.write("\n" if token == EOS else token + " ")
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
