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

from lstmkit.data.batching import text_batches
from lstmkit.errors import UsageError
from lstmkit.recipe import to_json
from lstmkit.tasks.sentiment import ensemble
from lstmkit.tasks.sentiment.config import NAME, SentimentModel, TrainRecipe
from lstmkit.tasks.sentiment.texts import Texts, read_and_encode
from lstmkit.tasks.sentiment.evaluate import baseline_scores, predict_logits, print_report, scores
from lstmkit.tasks.sentiment.model import SentimentEnsemble, build_classifier
from lstmkit.tasks.sentiment.pretraining import (classifier_step, pretrain_language_model,
                                                 pretrain_on_labelled, shuffled_batches)
from lstmkit import training
from lstmkit.training import TrainSpec, atomic, distributed, make_optimizer, setup


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


def _model_name(model: SentimentModel, recipe: TrainRecipe, pretrained: bool, transferred: bool) -> str:
    return (("BiLSTM" if model.bidirectional else "LSTM") + (" + n-grams" if model.ngram_buckets else "")
            + (" (LM-pretrained)" if pretrained else "")
            + (f" (pretrained on {recipe.transfer.pretrain_on.name})" if transferred else "")
            + (f", ensemble of {model.ensemble}" if model.ensemble > 1 else ""))


def _start_from_more_data(model, recipe: TrainRecipe, texts: Texts) -> dict:
    """Language-model pretraining and transfer, as asked (not when resuming: the checkpoint holds
    the fine-tuned weights); their summaries for the report."""
    config, phases = recipe.training, {}
    if config.resume:
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
    return phases


def _test_scores(model, texts: Texts, baseline: bool, seed: int, device) -> dict:
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
    device = setup(config)
    texts = read_and_encode(recipe, config.seed)
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
          file=sys.stderr)
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
