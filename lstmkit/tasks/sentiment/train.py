"""`lstmkit train sentiment`: read, tokenize, train (with optional pretraining, transfer, ensemble)
and report the test scores beside the bag-of-words baseline.

Without --valid, a seeded --valid-fraction of --train is held out for validation (early stopping,
best checkpoint); the test set is only used for the final report.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from lstmkit.data.batching import text_batches, truncate
from lstmkit.data.labels import LabelSet
from lstmkit.data.readers import Example, read_examples
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.data.vocabulary import PAD, UNK, Vocabulary
from lstmkit.errors import UsageError
from lstmkit.recipe import to_json
from lstmkit.tasks.sentiment import ensemble
from lstmkit.tasks.sentiment.config import (NAME, SentimentData, SentimentModel, TrainRecipe,
                                            Transfer, check_recipe)
from lstmkit.tasks.sentiment.evaluate import baseline_scores, predict_logits, print_report, scores
from lstmkit.tasks.sentiment.model import SentimentEnsemble, build_classifier
from lstmkit.tasks.sentiment.pretraining import (classifier_step, label_map,
                                                 pretrain_language_model, pretrain_on_labelled,
                                                 shuffled_batches)
from lstmkit import training
from lstmkit.training import TrainSpec, atomic, distributed, make_optimizer, setup
from lstmkit.training.checkpoint import read_json


@dataclass
class Encoded:
    sequences: list[list[int]]
    labels: list[int]
    tokens: list[list[str]]


def read_labelled(path: Path, data: SentimentData, detect: bool = False) -> list[Example]:
    """Labelled examples; detect=True: format and columns detected (the --pretrain-on file)."""
    result = (read_examples(path, skip_bad=data.skip_bad) if detect else
              read_examples(path, data.format, data.text_column, data.label_column, data.skip_bad))
    if result.skipped:
        print(f"{path}: skipped {len(result.skipped)} bad line(s); first: {result.skipped[0]}",
              file=sys.stderr)
    return result.examples


def _split(examples: list[Example], fraction: float, seed: int):
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, int(len(examples) * fraction))
    if cut >= len(examples):
        raise UsageError(f"{len(examples)} training example(s) are too few to hold out validation "
                         f"data; give --valid FILE")
    return [examples[i] for i in sorted(order[cut:])], [examples[i] for i in sorted(order[:cut])]


def encode_texts(tokens: list[list[str]], vocab: Vocabulary, max_len: int) -> list[list[int]]:
    return [truncate(vocab.encode(t), max_len, vocab.pad_index) for t in tokens]


def _encode(examples, tokens, vocab, labels: LabelSet, max_len) -> Encoded:
    return Encoded(encode_texts(tokens, vocab, max_len),
                   [labels.encode(e.label, e.where) for e in examples], tokens)


def _optimizer(model, config, ngram_weight_decay: float) -> torch.optim.Optimizer:
    """The configured optimizer; the n-gram table (if any) in its own group with its own decay,
    which is decoupled (a shrink per step: AdamW) for the Adam family."""
    if model.ngrams is None:
        return make_optimizer(model, config)
    others = [p for name, p in model.named_parameters() if not name.startswith("ngrams.")]
    groups = [{"params": others, "weight_decay": config.weight_decay},
              {"params": list(model.ngrams.parameters()), "weight_decay": ngram_weight_decay}]
    decoupled = dataclasses.replace(config, optimizer="adamw") if config.optimizer == "adam" else config
    return make_optimizer(model, decoupled, groups)


def _transfer_data(transfer: Transfer, data: SentimentData,
                   labels: LabelSet) -> tuple[list[Example], dict[str, int]]:
    """The --pretrain-on examples and how their labels read as training classes (none without it)."""
    if transfer.pretrain_on is None:
        return [], {}
    examples = read_labelled(transfer.pretrain_on, data, detect=True)
    return examples, label_map(transfer.pretrain_label_map, (e.label for e in examples), labels,
                               transfer.pretrain_on)


def _model_name(model: SentimentModel, recipe: TrainRecipe, pretrained: bool, transferred: bool) -> str:
    return (("BiLSTM" if model.bidirectional else "LSTM") + (" + n-grams" if model.ngram_buckets else "")
            + (" (LM-pretrained)" if pretrained else "")
            + (f" (pretrained on {recipe.transfer.pretrain_on.name})" if transferred else "")
            + (f", ensemble of {model.ensemble}" if model.ensemble > 1 else ""))


@dataclass
class _Texts:
    """Everything read and encoded before training."""
    labels: LabelSet
    vocab: Vocabulary
    train: Encoded
    valid: Encoded
    test: Encoded | None
    transfer: Encoded  # the --pretrain-on texts, their labels as training classes (often none)


def _read_and_encode(recipe: TrainRecipe, seed: int) -> _Texts:
    data = recipe.data
    train_examples = read_labelled(data.train, data)
    if data.valid:
        valid_examples = read_labelled(data.valid, data)
    else:
        train_examples, valid_examples = _split(train_examples, data.valid_fraction, seed)
    test_examples = read_labelled(data.test, data) if data.test else None
    labels = LabelSet.build(e.label for e in train_examples)
    transfer_examples, transfer_labels = _transfer_data(recipe.transfer, data, labels)
    tokenizer = Tokenizer("text", lowercase=recipe.model.lowercase)
    tokens = {name: [tokenizer(e.text) for e in examples] for name, examples in
              (("train", train_examples), ("valid", valid_examples), ("test", test_examples or []),
               ("transfer", transfer_examples))}
    vocab = Vocabulary.build(tokens["train"] + tokens["transfer"], min_freq=data.min_freq,
                             max_size=data.max_vocab, pad=PAD, unk=UNK)
    max_len = recipe.model.max_len
    transfer_sequences = encode_texts(tokens["transfer"], vocab, max_len)
    return _Texts(labels, vocab, _encode(train_examples, tokens["train"], vocab, labels, max_len),
                  _encode(valid_examples, tokens["valid"], vocab, labels, max_len),
                  _encode(test_examples, tokens["test"], vocab, labels, max_len) if test_examples else None,
                  Encoded(transfer_sequences, [transfer_labels[e.label] for e in transfer_examples],
                          tokens["transfer"]))


PHASES = "phases.json"  # in the run folder: the summaries of pretraining and transfer, for --resume


def _start_from_more_data(model, recipe: TrainRecipe, texts: _Texts) -> dict:
    """Language-model pretraining and transfer, as asked; their summaries for the report, kept in
    OUT/phases.json. Not when resuming: the checkpoints hold the fine-tuned weights, and the
    summaries are read back, so the resumed run reports what the uninterrupted one would."""
    config, phases = recipe.training, {}
    saved = config.out / PHASES if config.out is not None else None
    if config.resume:
        phases = read_json(saved, "the pretraining summaries") if saved and saved.is_file() else {}
        if not isinstance(phases, dict):
            raise UsageError(f"{saved}: expected the pretraining summaries as a JSON object")
        return phases
    pre = recipe.pretraining
    if pre.pretrain_epochs:
        phases["pretraining"] = pretrain_language_model(
            model, texts.train.sequences, texts.valid.sequences, config, pre.pretrain_epochs,
            pre.pretrain_lr, pre.pretrain_dropout)
        model.cpu()
    if texts.transfer.sequences:
        transfer = recipe.transfer
        phases["transfer"] = pretrain_on_labelled(
            model, texts.transfer.sequences, texts.transfer.labels, config,
            transfer.pretrain_on_epochs, transfer.pretrain_on_batch_size, str(transfer.pretrain_on))
        model.cpu()
    if saved is not None and distributed.from_environment().is_main:
        atomic.write_text(saved, json.dumps(phases) + "\n")  # also replaces an older run's
    return phases


def _test_scores(model, texts: _Texts, baseline: bool, seed: int, device) -> dict:
    """The test scores of `model` and, with `baseline`, of the bag-of-words model beside it."""
    test, classes = texts.test, len(texts.labels)
    report = {"test": scores(predict_logits(model, text_batches(test.sequences, test.labels, 256),
                                            device), test.labels, classes)}
    if baseline:
        report["baseline"] = baseline_scores(texts.train.tokens, texts.train.labels, test.tokens,
                                             test.labels, classes, seed)
        if texts.transfer.sequences:  # the same extra data offered to the linear model, for fairness
            report["baseline_with_transfer"] = baseline_scores(
                texts.train.tokens + texts.transfer.tokens, texts.train.labels + texts.transfer.labels,
                test.tokens, test.labels, classes, seed)
    return report


def main(recipe: TrainRecipe) -> int:
    config = recipe.training
    check_recipe(recipe)
    device = setup(config)
    texts = _read_and_encode(recipe, config.seed)
    labels, vocab = texts.labels, texts.vocab
    model_config = dataclasses.replace(recipe.model, vocab_size=len(vocab), num_classes=len(labels))
    members = model_config.ensemble
    ensemble.prepare_out(config.out, members, config)  # before hours of pretraining, not after
    member_config = to_json(dataclasses.replace(model_config, ensemble=1))
    model = build_classifier(model_config, config.backend)
    valid_batches = list(text_batches(texts.valid.sequences, texts.valid.labels, 256))
    phases = _start_from_more_data(model, recipe, texts)

    def evaluate(model, device):
        s = scores(predict_logits(model, valid_batches, device), texts.valid.labels, len(labels))
        return {"loss": s["loss"], "acc": s["accuracy"], "f1": s["f1"]}

    extras = {"vocab": vocab.to_json(), "labels": labels.to_json()}

    def make_spec(model, seed):
        return TrainSpec(
            task=NAME, model=model, model_config=member_config,
            train_batches=shuffled_batches(texts.train.sequences, texts.train.labels,
                                           config.batch_size, seed),
            step=classifier_step, evaluate=evaluate, monitor="acc", lower_is_better=False,
            make_optimizer=lambda model, config: _optimizer(model, config,
                                                            recipe.options.ngram_weight_decay),
            extras=extras)

    print(f"{len(texts.train.labels)} train / {len(texts.valid.labels)} valid"
          f"{f' / {len(texts.test.labels)} test' if texts.test else ''} texts; "
          f"{len(vocab)} words in the vocabulary; labels {labels.names}; device {device}",
          flush=True)
    if members == 1:
        result = training.fit(make_spec(model, config.seed), config)
        results, final_model, valid_scores = [result], result.model, result.best_metrics
    else:
        ensemble.shared_start(model, config.out, config, NAME, member_config)
        results = ensemble.train_members(model, members, config, make_spec)
        final_model = SentimentEnsemble([r.model for r in results]).to(device)
        valid_scores = evaluate(final_model, device)
        ensemble.save_ensemble(config.out, final_model, NAME, to_json(model_config), extras,
                               valid_scores)

    report = {"model": _model_name(model_config, recipe, "pretraining" in phases, "transfer" in phases),
              "train_examples": len(texts.train.labels), "valid_examples": len(texts.valid.labels),
              "vocab_size": len(vocab), "labels": labels.names,
              "best_epoch": [r.best_epoch for r in results] if len(results) > 1 else results[0].best_epoch,
              "epochs_run": sum(r.epochs_run for r in results), "valid": valid_scores,
              "train_seconds": round(sum(e["seconds"] for r in results for e in r.history), 1)}
    if len(results) > 1:
        report["members"] = [{"seed": config.seed + k, "best_epoch": r.best_epoch,
                              "valid": r.best_metrics} for k, r in enumerate(results)]
    for name, phase in phases.items():  # its whole wall time counts as training time
        report[name] = phase
        report["train_seconds"] = round(report["train_seconds"] + phase["seconds"], 1)
    if texts.test is not None:
        report.update(_test_scores(final_model, texts, recipe.options.baseline, config.seed, device))
    if distributed.from_environment().is_main:
        atomic.write_text(config.out / "report.json", json.dumps(report, indent=1) + "\n")
        print_report(report)
    return 0
