"""`lstmkit train sentiment` and `lstmkit predict sentiment`: every setting, with its flag."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit.data.readers import FORMATS
from lstmkit.data.vocabulary import PAD, UNK
from lstmkit.errors import UsageError
from lstmkit.recipe import above, at_least, between, option, section
from lstmkit.training.config import TrainConfig, backend_names

NAME = "sentiment"
POOLINGS = ("max", "mean", "max+mean", "last")
PROBABILITY = between(0, 1, high_open=True)


@dataclass
class SentimentData:
    train: Path | None = option(None, "labelled training texts", required=True, metavar="FILE")
    valid: Path | None = option(None, "validation texts", metavar="FILE",
                                default_text="a seeded --valid-fraction of --train")
    test: Path | None = option(None, "test texts, scored once at the end", metavar="FILE")
    format: str = option("auto", "auto: folder -> folders, *.jsonl -> jsonl, *.csv/*.tsv -> table, "
                         "else fastText '__label__X text' lines", choices=FORMATS)
    text_column: str | None = option(None, "table/jsonl: text column (name or 0-based index)",
                                     default_text="text, sentence, review, ...")
    label_column: str | None = option(None, "table/jsonl: label column (name or 0-based index)",
                                      default_text="label, sentiment, class, ...")
    skip_bad: bool = option(False, "skip malformed lines (and say how many of each file) instead "
                            "of stopping")
    encoding: str = option("utf-8", "text encoding of the data files (cp1252, latin-1, utf-16, ...)")
    unlabelled: Path | None = option(None, "unlabelled texts for the language-model pretraining, "
                                     "beside the training texts: a folder of text files (aclImdb's "
                                     "train/unsup) or a file with one text per line",
                                     aliases=("--unlabeled",), metavar="PATH", default_text="none")
    valid_fraction: float = option(0.1, "share of --train held out for validation without --valid",
                                   check=between(0, 1, high_open=True))
    min_freq: int = option(2, "rarer words become <unk>", check=at_least(1))
    max_vocab: int = option(30000, "the most frequent words kept", check=at_least(2))


@dataclass
class SentimentModel:
    """What a checkpoint needs to rebuild the classifier and read its texts."""
    vocab_size: int = option(0, flag=False, check=at_least(2))   # from the training texts
    num_classes: int = option(0, flag=False, check=at_least(2))  # from the training labels
    embedding_dim: int = option(128, "word embedding size", check=at_least(1))
    hidden_size: int = option(128, "LSTM units per direction", check=at_least(1))
    num_layers: int = option(1, "stacked LSTM layers", aliases=("--layers",), check=at_least(1))
    bidirectional: bool = option(True, "read every text in both directions",
                                 off_aliases=("--unidirectional",))
    dropout: float = option(0.5, "dropout before the classifier and between LSTM layers",
                            check=PROBABILITY)
    embedding_dropout: float = option(0.2, "dropout on the word embeddings", check=PROBABILITY)
    pooling: str = option("max", "how the LSTM outputs become one vector", choices=POOLINGS)
    bag_buckets: int = option(0, "a linear bag of hashed word uni+bigrams beside the LSTM, fitted "
                              "first (naive-Bayes weighted logistic regression); the LSTM learns "
                              "what it misses. Hash buckets; 0 = LSTM only", check=at_least(0))
    ngram_buckets: int = option(0, "a bag of hashed word uni+bigrams trained jointly with the LSTM "
                                "instead, e.g. 1048576; 0 = none", check=at_least(0))
    max_len: int = option(400, "tokens the LSTM reads per text (the first ones); the n-gram bag "
                          "reads the whole text", check=at_least(1))
    lowercase: bool = option(True, "fold case before tokenizing")
    ensemble: int = option(1, "fine-tune K classifiers from the same start (after any pretraining) "
                           "with seeds SEED..SEED+K-1 and predict with the mean of their "
                           "probabilities; costs K fine-tunings", metavar="K", check=at_least(1))


@dataclass
class Pretraining:
    pretrain_epochs: int = option(0, "first train the embedding and LSTM as a (bidirectional) "
                                  "language model on the --train texts (labels unused) for this "
                                  "many epochs, then the classifier from those weights; 0 = off",
                                  check=at_least(0))
    pretrain_lr: float | None = option(None, "learning rate of the pretraining",
                                       default_text="--lr", check=above(0))
    pretrain_dropout: float = option(0.1, "dropout on the LSTM outputs during pretraining",
                                     check=PROBABILITY)


@dataclass
class Transfer:
    pretrain_on: Path | None = option(None, "first train the classifier on these labelled texts "
                                      "(e.g. SST-2 before product reviews; format and columns "
                                      "detected as for --train), then fine-tune it on --train; "
                                      "their words join the vocabulary", metavar="FILE")
    pretrain_on_epochs: int = option(3, "epochs on the --pretrain-on texts", check=at_least(1))
    pretrain_on_batch_size: int | None = option(None, "batch size on the --pretrain-on texts",
                                                default_text="--batch-size", check=at_least(1))
    pretrain_label_map: str | None = option(None, "how the --pretrain-on labels read as training "
                                            "labels, e.g. '0=1,1=2' (SST-2's 0/1 as the fastText "
                                            "reviews' 1/2); not needed when both use the same names",
                                            metavar="SRC=DST,...")


@dataclass
class SentimentOptions:
    ngram_weight_decay: float = option(0.0, "decoupled weight decay on the n-gram weights",
                                       check=at_least(0))
    baseline: bool = option(True, "fit the bag-of-words logistic-regression baseline beside the model")
    select_on: str = option("accuracy", "the validation score that picks the best epoch and "
                            "stops training early", choices=("accuracy", "loss"))


@dataclass
class TrainRecipe:
    data: SentimentData = section(SentimentData)
    model: SentimentModel = section(lambda: SentimentModel(bag_buckets=1 << 20))
    pretraining: Pretraining = section(Pretraining,
                                       "language-model pretraining (Dai & Le 2015; ULMFiT)")
    transfer: Transfer = section(Transfer, "transfer from a related labelled data set")
    options: SentimentOptions = section(SentimentOptions, "sentiment training")
    training: TrainConfig = section(lambda: TrainConfig(
        out=Path("runs/sentiment"), epochs=8, lr=2e-3, batch_size=32, clip=5.0, patience=3),
        "training")


def check_recipe(recipe: TrainRecipe) -> None:
    """Settings that only make sense together, refused before the run folder or data is touched."""
    if recipe.transfer.pretrain_label_map and recipe.transfer.pretrain_on is None:
        raise UsageError("--pretrain-label-map needs --pretrain-on FILE")
    if recipe.data.unlabelled is not None and not recipe.pretraining.pretrain_epochs:
        raise UsageError("--unlabelled texts are for the language-model pretraining: add "
                         "--pretrain-epochs N (e.g. 1)")


@dataclass
class PredictOptions:
    model: Path | None = option(None, "a training run folder (uses its best/) or a checkpoint folder",
                                required=True, metavar="DIR")
    texts: tuple[str, ...] = option((), "texts to classify", nargs="*", metavar="TEXT")
    file: str | None = option(None, "texts to classify: one per line ('-' = standard input), or "
                              "a table/jsonl with --format and --text-column", metavar="FILE")
    format: str = option("lines", "how --file holds the texts", choices=("lines", "table", "jsonl"))
    text_column: str | None = option(None, "table/jsonl: the text column",
                                     default_text="text, sentence, review, ...")
    encoding: str = option("utf-8", "text encoding of --file or standard input")
    json: bool = option(False, "one JSON object per text")
    device: str = option("auto", "auto (CUDA when there is one), cpu, cuda or cuda:N")
    backend: str = option("auto", "lstmkit.LSTM engine", choices=backend_names)


@dataclass
class PredictRecipe:
    predict: PredictOptions = section(PredictOptions, "prediction")


def upgrade_v1(model: dict, extras: dict) -> tuple[dict, dict]:
    """A format-1 checkpoint: the architecture nested (with the engine name, now a runtime
    choice), the tokenizer named by its function, the vocabulary without its special tokens."""
    architecture = {k: v for k, v in model["architecture"].items() if k != "backend"}
    config = {**architecture, "max_len": model["max_len"], "lowercase": model["lowercase"],
              "ensemble": model.get("ensemble", 1)}
    vocab = {"tokens": extras["vocab"]["tokens"], "pad": PAD, "unk": UNK}
    return config, {**extras, "vocab": vocab}
