"""Sentiment (text classification): the original tutorial's project, done right.

    lstmkit train sentiment --train reviews.ft.txt.bz2 --test test.ft.txt.bz2 --out runs/amazon
    lstmkit predict sentiment --model runs/amazon "Great value, works perfectly."

Reads fastText lines (.gz/.bz2 too), CSV/TSV, one folder per class, or JSON lines (see
lstmkit.data.readers); a vocabulary with UNK built on the training texts; packed variable-length
batches; embedding -> (bi)LSTM -> pooling -> linear (lstmkit.tasks.sentiment_model). Reports
accuracy and F1 on the test set beside a bag-of-words logistic regression fitted on the same
training examples (lstmkit.baselines). Without --valid, a seeded tenth of --train is held out for
validation (early stopping, best checkpoint); the test set is only used for the final report.
With --pretrain-epochs N the embedding and LSTM are first trained as a language model on the
training texts (Dai & Le 2015); with --pretrain-on FILE the whole classifier is first trained on a
related labelled data set (e.g. SST-2 before product reviews), then fine-tuned: see
lstmkit.tasks.sentiment_pretraining. With --ensemble K, K classifiers are fine-tuned from that
start with different seeds and predict together (lstmkit.tasks.sentiment_ensemble).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lstmkit import train
from lstmkit.checkpoint import load_checkpoint, run_or_checkpoint_dir
from lstmkit.data.batching import make_batches, truncate
from lstmkit.data.readers import FORMATS, Example, read_examples, read_texts
from lstmkit.data.text import LabelSet, Vocabulary, tokenize
from lstmkit.errors import UsageError
from lstmkit.tasks import sentiment_ensemble as ensemble
from lstmkit.tasks.sentiment_model import (POOLINGS, SentimentClassifier, SentimentEnsemble,
                                           build_classifier, classification_metrics)
from lstmkit.tasks.sentiment_pretraining import (classifier_step, label_map,
                                                 pretrain_language_model, pretrain_on_labelled,
                                                 shuffled_batches)

NAME = "sentiment"
HELP = "classify texts (e.g. reviews as positive/negative) with an embedding + (bi)LSTM model"


def _add_reader_args(parser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="auto: folder -> folders, *.jsonl -> jsonl, *.csv/*.tsv -> table, "
                             "else fastText '__label__X text' lines")
    parser.add_argument("--text-column", help="table/jsonl: text column (name or 0-based index)")
    parser.add_argument("--label-column", help="table/jsonl: label column (name or 0-based index)")


def add_train_args(parser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--train", type=Path, required=True, help="labelled training texts")
    data.add_argument("--valid", type=Path, help="validation texts (default: a tenth of --train)")
    data.add_argument("--test", type=Path, help="test texts, scored once at the end")
    _add_reader_args(data)
    data.add_argument("--skip-bad", action="store_true",
                      help="skip malformed lines (and say how many) instead of stopping")
    data.add_argument("--valid-fraction", type=float, default=0.1)
    data.add_argument("--min-freq", type=int, default=2, help="rarer words become <unk>")
    data.add_argument("--max-vocab", type=int, default=30000)
    data.add_argument("--max-len", type=int, default=400, help="tokens kept per text (the first ones)")
    data.add_argument("--no-lowercase", dest="lowercase", action="store_false")
    model = parser.add_argument_group("model")
    model.add_argument("--embedding-dim", type=int, default=128)
    model.add_argument("--hidden-size", type=int, default=128)
    model.add_argument("--layers", type=int, default=1)
    model.add_argument("--unidirectional", dest="bidirectional", action="store_false")
    model.add_argument("--dropout", type=float, default=0.5)
    model.add_argument("--embedding-dropout", type=float, default=0.2)
    model.add_argument("--pooling", choices=POOLINGS, default="max")
    model.add_argument("--backend", default="auto", help="lstmkit.LSTM engine")
    model.add_argument("--ngram-buckets", type=int, default=0,
                       help="add a linear bag of hashed word uni+bigrams beside the LSTM "
                            "(LSTM + n-grams); e.g. 1048576; 0 = LSTM only (default)")
    model.add_argument("--ngram-weight-decay", type=float, default=0.0,
                       help="decoupled weight decay on the n-gram weights")
    pre = parser.add_argument_group("language-model pretraining (Dai & Le 2015; ULMFiT)")
    pre.add_argument("--pretrain-epochs", type=int, default=0,
                     help="first train the embedding and LSTM as a (bidirectional) language model "
                          "on the --train texts (labels unused) for this many epochs, then the "
                          "classifier from those weights; 0 = off (default)")
    pre.add_argument("--pretrain-lr", type=float, default=None, help="default: --lr")
    pre.add_argument("--pretrain-dropout", type=float, default=0.1,
                     help="dropout on the LSTM outputs during pretraining")
    transfer = parser.add_argument_group("transfer from a related labelled data set")
    transfer.add_argument("--pretrain-on", type=Path, metavar="FILE",
                          help="first train the classifier on these labelled texts (e.g. SST-2 "
                               "before product reviews; format and columns detected as for "
                               "--train), then fine-tune it on --train; their words join the "
                               "vocabulary")
    transfer.add_argument("--pretrain-on-epochs", type=int, default=3)
    transfer.add_argument("--pretrain-on-batch-size", type=int, default=None,
                          help="default: --batch-size (short phrases train well in larger batches)")
    transfer.add_argument("--pretrain-label-map", metavar="SRC=DST,...",
                          help="how the --pretrain-on labels read as training labels, e.g. "
                               "'0=1,1=2' (SST-2's 0/1 as the fastText reviews' 1/2); not needed "
                               "when both files use the same label names")
    parser.add_argument("--ensemble", type=int, default=1, metavar="K",
                        help="fine-tune K classifiers from the same start (after any pretraining) "
                             "with seeds SEED..SEED+K-1 and predict with the mean of their "
                             "probabilities; costs K fine-tunings (default 1: one model)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the bag-of-words logistic-regression baseline")
    train.add_training_args(parser, out=Path("runs/sentiment"), epochs=8, lr=2e-3, batch_size=32, clip=5.0,
                            patience=3)


@dataclass
class Encoded:
    sequences: list[list[int]]
    labels: list[int]
    tokens: list[list[str]]


def _read(path: Path, args, detect: bool = False) -> list[Example]:
    """Labelled examples; detect=True: format and columns detected (the --pretrain-on file)."""
    result = (read_examples(path, skip_bad=args.skip_bad) if detect else
              read_examples(path, args.format, args.text_column, args.label_column, args.skip_bad))
    if result.skipped:
        print(f"{path}: skipped {len(result.skipped)} bad line(s); first: {result.skipped[0]}",
              file=sys.stderr)
    return result.examples


def _split(examples: list[Example], fraction: float, seed: int):
    if not 0 < fraction < 1:
        raise UsageError(f"--valid-fraction must be between 0 and 1, got {fraction}")
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, int(len(examples) * fraction))
    if cut >= len(examples):
        raise UsageError(f"{len(examples)} training example(s) are too few to hold out validation "
                         f"data; give --valid FILE")
    return [examples[i] for i in sorted(order[cut:])], [examples[i] for i in sorted(order[:cut])]


def _encode(examples, vocab, labels: LabelSet, max_len, lowercase) -> Encoded:
    tokens = [tokenize(e.text, lowercase) for e in examples]
    return Encoded([truncate(vocab.encode(t), max_len) for t in tokens],
                   [labels.encode(e.label, e.where) for e in examples], tokens)


def predict_logits(model, batches, device) -> torch.Tensor:
    """(N, C) logits in the original order of the texts."""
    model.eval()
    n = sum(len(b) for b in batches)
    logits = None
    with torch.no_grad():
        for batch in batches:
            out = model(batch.ids.to(device), batch.lengths).float().cpu()  # (B, C)
            logits = torch.empty(n, out.shape[1]) if logits is None else logits
            logits[batch.index] = out
    return logits


def _scores(logits: torch.Tensor, targets: list[int], num_classes: int) -> dict:
    target = torch.tensor(targets)
    return {"loss": F.cross_entropy(logits, target).item(),
            **classification_metrics(logits.argmax(1), target, num_classes)}


def _optimizer(model, config, ngram_weight_decay: float) -> torch.optim.Optimizer:
    """The configured optimizer; the n-gram table (if any) in its own group with its own decay."""
    if model.ngrams is None:
        return train.make_optimizer(model, config)
    others = [p for name, p in model.named_parameters() if not name.startswith("ngrams.")]
    groups = [{"params": others, "weight_decay": config.weight_decay},
              {"params": list(model.ngrams.parameters()), "weight_decay": ngram_weight_decay}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=config.lr)  # decoupled decay: a shrink per step


def _transfer_data(args, labels: LabelSet) -> tuple[list[Example], dict[str, int]]:
    """The --pretrain-on examples and how their labels read as training classes (none without it)."""
    if args.pretrain_on is None:
        if args.pretrain_label_map:
            raise UsageError("--pretrain-label-map needs --pretrain-on FILE")
        return [], {}
    if args.pretrain_on_epochs < 1:
        raise UsageError(f"--pretrain-on-epochs must be >= 1, got {args.pretrain_on_epochs}")
    if args.pretrain_on_batch_size is not None and args.pretrain_on_batch_size < 1:
        raise UsageError(f"--pretrain-on-batch-size must be >= 1, got {args.pretrain_on_batch_size}")
    examples = _read(args.pretrain_on, args, detect=True)
    return examples, label_map(args.pretrain_label_map, (e.label for e in examples), labels,
                               args.pretrain_on)


def train_main(args) -> int:
    config = train.config_from_args(args)
    device = train.setup(config)
    train_examples = _read(args.train, args)
    if args.valid:
        valid_examples = _read(args.valid, args)
    else:
        train_examples, valid_examples = _split(train_examples, args.valid_fraction, config.seed)
    test_examples = _read(args.test, args) if args.test else None

    labels = LabelSet.build(e.label for e in train_examples)
    transfer_examples, transfer_labels = _transfer_data(args, labels)
    train_tokens = [tokenize(e.text, args.lowercase) for e in train_examples]
    transfer_tokens = [tokenize(e.text, args.lowercase) for e in transfer_examples]
    vocab = Vocabulary.build(train_tokens + transfer_tokens, args.min_freq, args.max_vocab)
    encode = lambda examples: _encode(examples, vocab, labels, args.max_len, args.lowercase)  # noqa
    train_data, valid_data = encode(train_examples), encode(valid_examples)
    test_data = encode(test_examples) if test_examples else None

    architecture = dict(vocab_size=len(vocab), num_classes=len(labels),
                        embedding_dim=args.embedding_dim, hidden_size=args.hidden_size,
                        num_layers=args.layers, bidirectional=args.bidirectional,
                        dropout=args.dropout, embedding_dropout=args.embedding_dropout,
                        pooling=args.pooling, backend=args.backend,
                        ngram_buckets=args.ngram_buckets)
    if args.ensemble < 1:
        raise UsageError(f"--ensemble must be >= 1, got {args.ensemble}")
    ensemble.prepare_out(config.out, args.ensemble, config)  # before hours of pretraining, not after
    model = SentimentClassifier(**architecture)
    model_config = {"architecture": architecture, "max_len": args.max_len,
                    "lowercase": args.lowercase, "tokenizer": "lstmkit.data.text.tokenize"}
    valid_batches = make_batches(valid_data.sequences, valid_data.labels, 256)
    if args.pretrain_epochs < 0:
        raise UsageError(f"--pretrain-epochs must be >= 0, got {args.pretrain_epochs}")
    pretraining = None
    if args.pretrain_epochs and not config.resume:  # resuming restores the fine-tuned weights
        pretraining = pretrain_language_model(model, train_data.sequences, valid_data.sequences,
                                              config, args.pretrain_epochs, args.pretrain_lr,
                                              args.pretrain_dropout)
        model.cpu()
    transfer_targets = [transfer_labels[e.label] for e in transfer_examples]
    transfer = None
    if transfer_examples and not config.resume:
        transfer = pretrain_on_labelled(
            model, [truncate(vocab.encode(t), args.max_len) for t in transfer_tokens],
            transfer_targets, config,
            args.pretrain_on_epochs, args.pretrain_on_batch_size, str(args.pretrain_on))
        model.cpu()

    def make_spec(model, seed):
        return train.TrainSpec(
            task=NAME, model=model, model_config=model_config,
            train_batches=shuffled_batches(train_data.sequences, train_data.labels, config.batch_size, seed),
            step=classifier_step, evaluate=evaluate, monitor="acc", lower_is_better=False,
            make_optimizer=lambda model, config: _optimizer(model, config, args.ngram_weight_decay),
            extras=extras)

    def evaluate(model, device):
        scores = _scores(predict_logits(model, valid_batches, device), valid_data.labels, len(labels))
        return {"loss": scores["loss"], "acc": scores["accuracy"], "f1": scores["f1"]}

    print(f"{len(train_examples)} train / {len(valid_examples)} valid"
          f"{f' / {len(test_examples)} test' if test_examples else ''} texts; "
          f"{len(vocab)} words in the vocabulary; labels {labels.names}; device {device}",
          file=sys.stderr)
    extras = {"vocab": vocab.to_json(), "labels": labels.to_json()}
    if args.ensemble == 1:
        result = train.fit(make_spec(model, config.seed), config)
        results, final_model, valid_scores = [result], result.model, result.best_metrics
    else:
        ensemble.shared_start(model, config.out, config, NAME, model_config)
        results = ensemble.train_members(model, args.ensemble, config, make_spec)
        final_model = SentimentEnsemble([r.model for r in results]).to(device)
        valid_scores = evaluate(final_model, device)
        ensemble.save_ensemble(config.out, final_model, NAME, model_config, extras, valid_scores)

    kind = (("BiLSTM" if args.bidirectional else "LSTM") + (" + n-grams" if args.ngram_buckets else "")
            + (" (LM-pretrained)" if pretraining else "")
            + (f" (pretrained on {args.pretrain_on.name})" if transfer else "")
            + (f", ensemble of {args.ensemble}" if args.ensemble > 1 else ""))
    report = {"model": kind, "train_examples": len(train_examples), "valid_examples": len(valid_examples),
              "vocab_size": len(vocab), "labels": labels.names,
              "best_epoch": [r.best_epoch for r in results] if len(results) > 1 else results[0].best_epoch,
              "epochs_run": sum(r.epochs_run for r in results), "valid": valid_scores,
              "train_seconds": round(sum(e["seconds"] for r in results for e in r.history), 1)}
    if len(results) > 1:
        report["members"] = [{"seed": config.seed + k, "best_epoch": r.best_epoch,
                              "valid": r.best_metrics} for k, r in enumerate(results)]
    if pretraining is not None:  # its whole wall time counts as training time
        report["pretraining"] = pretraining
        report["train_seconds"] = round(report["train_seconds"] + pretraining["seconds"], 1)
    if transfer is not None:  # so is the transfer phase's
        report["transfer"] = transfer
        report["train_seconds"] = round(report["train_seconds"] + transfer["seconds"], 1)
    if test_data is not None:
        test_batches = make_batches(test_data.sequences, test_data.labels, 256)
        report["test"] = _scores(predict_logits(final_model, test_batches, device),
                                 test_data.labels, len(labels))
        if args.baseline:
            from lstmkit.baselines import BagOfWordsLogReg

            def baseline_scores(tokens, targets) -> dict:
                baseline = BagOfWordsLogReg(seed=config.seed).fit(tokens, targets, len(labels))
                return {**_scores(torch.log(baseline.predict_proba(test_data.tokens)),
                                  test_data.labels, len(labels)), "l2": baseline.l2}

            report["baseline"] = baseline_scores(train_data.tokens, train_data.labels)
            if transfer_examples:  # the same extra data offered to the linear model, for fairness
                report["baseline_with_transfer"] = baseline_scores(
                    train_data.tokens + transfer_tokens, train_data.labels + transfer_targets)
    if train.distributed.from_environment().is_main:
        (config.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        _print_report(report)
    return 0


def _print_report(report: dict) -> None:
    valid = report["valid"]
    members = report.get("members")
    which = (f"ensemble of {len(members)} (best epochs {', '.join(str(m['best_epoch']) for m in members)})"
             if members else f"best epoch {report['best_epoch']}")
    print(f"{which}: valid accuracy {valid['acc']:.4f}  F1 {valid['f1']:.4f}")
    if "test" not in report:
        return
    rows = [(report["model"], report["test"]),
            ("bag-of-words logreg", report.get("baseline")),
            ("bag-of-words logreg, + the --pretrain-on texts", report.get("baseline_with_transfer"))]
    rows = [(name, scores) for name, scores in rows if scores]
    width = max(len(name) for name, _ in rows)
    print(f"{'test (' + str(report['test']['n']) + ' texts)':<{width + 4}}accuracy  F1")
    for name, scores in rows:
        print(f"  {name:<{width}}  {scores['accuracy']:.4f}    {scores['f1']:.4f}")


# ---- prediction --------------------------------------------------------------------------------

def add_predict_args(parser) -> None:
    parser.add_argument("--model", type=Path, required=True,
                        help="a training run folder (uses its best/) or a checkpoint folder")
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--file", help="texts to classify: one per line ('-' = standard input), "
                                       "or a table/jsonl with --format and --text-column")
    parser.add_argument("--format", choices=("lines", "table", "jsonl"), default="lines")
    parser.add_argument("--text-column", help="table/jsonl: the text column")
    parser.add_argument("--json", action="store_true", help="one JSON object per text")
    parser.add_argument("--device", default="auto")


def load_model(directory: Path, device: torch.device):
    """(model, vocabulary, labels, model_config) from a run folder or a checkpoint folder."""
    ckpt = load_checkpoint(run_or_checkpoint_dir(directory), task=NAME)
    model = build_classifier(ckpt.model_config["architecture"], ckpt.model_config.get("ensemble", 1))
    model.load_state_dict(ckpt.state_dict)
    return (model.to(device).eval(), Vocabulary.from_json(ckpt.extras["vocab"]),
            LabelSet.from_json(ckpt.extras["labels"]), ckpt.model_config)


def predict_main(args) -> int:
    device = train.select_device(args.device)
    model, vocab, labels, config = load_model(args.model, device)
    if args.texts and args.file:
        raise UsageError("give texts as arguments or --file, not both")
    if args.texts:
        texts = [t for t in args.texts if t.strip()]
    elif args.file:
        texts = [e.text for e in read_texts(args.file, args.format, args.text_column)]
    elif not sys.stdin.isatty():
        texts = [e.text for e in read_texts("-")]
    else:
        raise UsageError("no texts: give them as arguments, with --file FILE, or on standard input")
    if not texts:
        raise UsageError("no texts to classify (all empty)")
    sequences = [truncate(vocab.encode(tokenize(t, config["lowercase"])), config["max_len"])
                 for t in texts]
    probabilities = torch.softmax(predict_logits(model, make_batches(sequences, None, 256), device), 1)
    for text, p in zip(texts, probabilities):
        best = int(p.argmax())
        if args.json:
            print(json.dumps({"label": labels.names[best], "probability": round(float(p[best]), 4),
                              "probabilities": dict(zip(labels.names, p.tolist())), "text": text},
                             ensure_ascii=False))
        else:
            print(f"{labels.names[best]}\t{float(p[best]):.4f}\t{text}")
    return 0
