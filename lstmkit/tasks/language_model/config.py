"""`lstmkit train lm` and `lstmkit generate`: every setting, with its flag."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit.data.vocabulary import UNK
from lstmkit.errors import UsageError
from lstmkit.recipe import at_least, between, option, section
from lstmkit.training.config import TrainConfig

NAME = "lm"
LEVELS = ("char", "word")
SOFTMAXES = ("full", "adaptive")


@dataclass
class LMData:
    text: Path | None = option(None, "UTF-8 training text", required=True, metavar="FILE")
    valid_text: Path | None = option(None, "validation text", metavar="FILE",
                                     default_text="the last --valid-fraction of --text")
    test_text: Path | None = option(None, "test text, scored once at the end", metavar="FILE")
    valid_fraction: float = option(0.1, "share of --text held out (its end) without --valid-text",
                                   check=between(0, 1, high_open=True))
    encoding: str = option("utf-8", "text encoding of the text files")


@dataclass
class LMModel:
    """What a checkpoint needs to rebuild the model and read its text."""
    vocab_size: int = option(0, flag=False, check=at_least(1))   # from the training text
    level: str = option("char", "tokens: characters, or words with <eos> at each line end",
                        choices=LEVELS)
    embedding_dim: int | None = option(None, "token embedding size", aliases=("--embed-size",),
                                       default_text="64 (char) or --hidden-size (word)",
                                       check=at_least(1))
    hidden_size: int = option(256, "LSTM units", check=at_least(1))
    num_layers: int = option(2, "stacked LSTM layers", check=at_least(1))
    dropout: float = option(0.0, "dropout on embeddings, between layers and on outputs",
                            check=between(0, 1, high_open=True))
    tie_weights: bool = option(False, "share input and output embeddings (Press & Wolf 2017)")
    softmax: str = option("full", "adaptive: a cheaper output layer for large word vocabularies "
                          "(word level)", choices=SOFTMAXES)
    cutoffs: tuple[int, ...] = option((2000, 6000), "adaptive softmax: ids below each cutoff form a "
                                      "cluster (frequent words first)", metavar="N,N,...")


@dataclass
class LMOptions:
    bptt: int = option(100, "tokens per chunk (truncation length)", check=at_least(1))
    chunks_per_epoch: int = option(0, "validate and checkpoint every N chunks (0: once per pass "
                                   "over the text); the state runs on across these shorter epochs",
                                   check=at_least(0))


@dataclass
class TrainRecipe:
    data: LMData = section(LMData)
    model: LMModel = section(LMModel)
    lm: LMOptions = section(LMOptions, "language-model training")
    training: TrainConfig = section(lambda: TrainConfig(
        out=Path("runs/lm"), epochs=10, batch_size=32, lr=2e-3, clip=1.0, lr_schedule="plateau"),
        "training")


def check_recipe(recipe: TrainRecipe) -> None:
    """Settings that only make sense together, refused before the run folder or data is touched."""
    if recipe.model.softmax == "adaptive" and recipe.model.level != "word":
        raise UsageError("--softmax adaptive is for word level (it needs ids sorted by frequency)")


@dataclass
class GenerateOptions:
    model: Path | None = option(None, "run folder of `lstmkit train lm` (uses its best/) or a "
                                "checkpoint folder", required=True, metavar="DIR")
    prime: str | None = option(None, "text to start from", default_text="a new line")
    length: int = option(500, "tokens to generate", check=at_least(0))
    temperature: float = option(0.8, "> 1 more varied, < 1 safer, 0 greedy", check=at_least(0))
    top_k: int = option(0, "sample among the k most likely tokens (0: all)", check=at_least(0))
    seed: int | None = option(None, "seed for a repeatable sample", default_text="random")


@dataclass
class GenerateRecipe:
    generate: GenerateOptions = section(GenerateOptions, "generation")


def upgrade_v1(model: dict, extras: dict) -> tuple[dict, dict]:
    """A format-1 checkpoint: `embed_size` for the embedding, the vocabulary with its level."""
    config = {k: v for k, v in model.items() if k != "embed_size"}
    config["embedding_dim"] = model["embed_size"]
    old = extras["vocab"]
    vocab = {"tokens": old["tokens"], "pad": None, "unk": UNK if old["level"] == "word" else None}
    return config, {**extras, "vocab": vocab}
