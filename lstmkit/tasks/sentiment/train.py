"""`lstmkit train sentiment`: read, tokenize, fit the n-gram bag and the baseline, train the LSTM
(with optional pretraining, transfer, ensemble) within the time budget, and report the test
scores beside the bag-of-words baseline.

Without --valid, a seeded --valid-fraction of --train is held out for validation (the bag's
penalty, early stopping, the best checkpoint); the test set is only used for the final report.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time

import torch
from torch import nn

from lstmkit import training
from lstmkit.data.batching import text_batches
from lstmkit.errors import UsageError
from lstmkit.recipe import to_json
from lstmkit.tasks.evaluation import run_recipe_files, write_run_recipe
from lstmkit.tasks.sentiment import ensemble
from lstmkit.tasks.sentiment.bag import fit_bag
from lstmkit.tasks.sentiment.config import NAME, SentimentModel, TrainRecipe, check_recipe
from lstmkit.tasks.sentiment.evaluate import (baseline_scores, predict_logits, print_report,
                                              scores, test_report)
from lstmkit.tasks.sentiment.model import SentimentEnsemble, build_classifier
from lstmkit.tasks.sentiment.pretraining import (classifier_step, pretrain_language_model,
                                                 pretrain_on_labelled, shuffled_batches)
from lstmkit.tasks.sentiment.texts import Texts, read_and_encode
from lstmkit.training import TrainSpec, atomic, distributed, make_optimizer, setup
from lstmkit.training.budget import Budget
from lstmkit.training.checkpoint import read_json


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
    return (("BiLSTM" if model.bidirectional else "LSTM")
            + (" + n-gram bag" if model.bag_buckets else "")
            + (" + n-grams" if model.ngram_buckets else "")
            + (" (LM-pretrained)" if pretrained else "")
            + (f" (pretrained on {recipe.transfer.pretrain_on.name})" if transferred else "")
            + (f", ensemble of {model.ensemble}" if model.ensemble > 1 else ""))


PHASES = "phases.json"  # in the run folder: the summaries of pretraining and transfer, for --resume


def _start_from_more_data(model, recipe: TrainRecipe, texts: Texts, budget: Budget) -> dict:
    """Language-model pretraining and transfer, as asked, each with an equal share of the time
    left to it and the fine-tuning; their summaries for the report, kept in OUT/phases.json. Not
    when resuming: the checkpoints hold the fine-tuned weights, and the summaries are read back, so
    the resumed run reports what the uninterrupted one would."""
    config, phases = recipe.training, {}
    saved = config.out / PHASES if config.out is not None else None
    if config.resume:
        phases = read_json(saved, "the pretraining summaries") if saved and saved.is_file() else {}
        if not isinstance(phases, dict):
            raise UsageError(f"{saved}: expected the pretraining summaries as a JSON object")
        return phases
    pre, transfer = recipe.pretraining, recipe.transfer
    parts = 1 + bool(pre.pretrain_epochs) + bool(texts.transfer.sequences)
    if pre.pretrain_epochs:
        phases["pretraining"] = pretrain_language_model(
            model, texts.train.sequences + texts.unlabelled, texts.valid.sequences, config,
            pre.pretrain_epochs, pre.pretrain_lr, pre.pretrain_dropout, budget.share(parts))
        parts -= 1
        model.cpu()
    if texts.transfer.sequences:
        phases["transfer"] = pretrain_on_labelled(
            model, texts.transfer.sequences, texts.transfer.labels, config,
            transfer.pretrain_on_epochs, transfer.pretrain_on_batch_size, str(transfer.pretrain_on),
            budget.share(parts))
        model.cpu()
    if saved is not None and distributed.from_environment().is_main:
        atomic.write_text(saved, json.dumps(phases) + "\n")  # also replaces an older run's
    return phases


def _fit_bag(model, texts: Texts, seed: int) -> tuple[torch.Tensor | None, dict | None]:
    """Fit the n-gram bag into `model` (when it has one): the training texts' cross-fitted bag
    logits for the LSTM's training, and the bag's summary for the report."""
    if model.bag_weight is None:
        return None, None
    started = time.perf_counter()
    print(f"fitting the n-gram bag on {len(texts.train.labels):,} texts", flush=True)
    bag, offsets = fit_bag(texts.train.sequences, texts.train.labels, texts.valid.sequences,
                           texts.valid.labels, len(texts.labels), model.bag_weight.shape[0], seed)
    model.bag_weight.copy_(bag.weight)
    model.bag_bias.copy_(bag.bias)
    nn.init.zeros_(model.head.weight)  # the LSTM starts as "no opinion": the model is the bag
    nn.init.zeros_(model.head.bias)
    print(f"n-gram bag: valid accuracy {bag.valid_accuracy:.4f} (C {bag.c:g})", flush=True)
    return offsets, {"c": bag.c, "valid_accuracy": bag.valid_accuracy,
                     "seconds": round(time.perf_counter() - started, 1)}


def _baseline_first(recipe: TrainRecipe, texts: Texts) -> dict:
    """The baseline's test scores, before the long training: the bar to beat, shown at once."""
    if texts.test is None or not recipe.options.baseline:
        return {}
    test, classes, seed = texts.test, len(texts.labels), recipe.training.seed
    print(f"fitting the bag-of-words baseline on {len(texts.train.labels):,} texts", flush=True)
    report = {"baseline": baseline_scores(texts.train.tokens, texts.train.labels, test.tokens,
                                          test.labels, classes, seed)}
    if texts.transfer.sequences:  # the same extra data offered to the linear model, for fairness
        report["baseline_with_transfer"] = baseline_scores(
            texts.train.tokens + texts.transfer.tokens, texts.train.labels + texts.transfer.labels,
            test.tokens, test.labels, classes, seed)
    return report


class _Training:
    """The fine-tuning of one classifier or of an ensemble's members, on the budget left."""

    def __init__(self, recipe: TrainRecipe, texts: Texts, model_config: SentimentModel,
                 offsets: torch.Tensor | None, budget: Budget):
        self.recipe, self.texts, self.offsets, self.budget = recipe, texts, offsets, budget
        self.model_config = model_config
        self.member_config = to_json(dataclasses.replace(model_config, ensemble=1))
        self.valid_batches = list(text_batches(texts.valid.sequences, texts.valid.labels, 256))
        self.extras = {"vocab": texts.vocab.to_json(), "labels": texts.labels.to_json()}

    def evaluate(self, model, device) -> dict:
        s = scores(predict_logits(model, self.valid_batches, device), self.texts.valid.labels,
                   len(self.texts.labels))
        return {"loss": s["loss"], "acc": s["accuracy"], "f1": s["f1"]}

    def spec(self, model, seed: int, budget: Budget, final_items: int, run_files: dict) -> TrainSpec:
        recipe, texts, config = self.recipe, self.texts, self.recipe.training
        by_accuracy = recipe.options.select_on == "accuracy"
        return TrainSpec(
            task=NAME, model=model, model_config=self.member_config,
            train_batches=shuffled_batches(texts.train.sequences, texts.train.labels,
                                           config.batch_size, seed),
            step=functools.partial(classifier_step, bag_offsets=self.offsets),
            evaluate=self.evaluate, monitor="acc" if by_accuracy else "loss",
            lower_is_better=not by_accuracy, score_start=self.offsets is not None,
            make_optimizer=lambda model, config: _optimizer(model, config,
                                                            recipe.options.ngram_weight_decay),
            extras=self.extras, budget=budget, eval_items=len(texts.valid.labels),
            final_items=final_items, run_files=run_files)

    def run(self, model, device):
        """(results, final model, its validation scores)."""
        config, members = self.recipe.training, self.model_config.ensemble
        n_test = len(self.texts.test.labels) if self.texts.test else 0
        if members == 1:
            result = training.fit(self.spec(model, config.seed, self.budget, n_test,
                                            run_recipe_files(self.recipe)), config)
            return [result], result.model, result.best_metrics
        ensemble.shared_start(model, config.out, config, NAME, self.member_config)
        results = ensemble.train_members(
            model, members, config,
            lambda m, seed, k: self.spec(m, seed, self.budget.share(members - k),
                                         n_test * members if k == members - 1 else 0, {}))
        final = SentimentEnsemble([r.model for r in results]).to(device)
        valid = self.evaluate(final, device)
        ensemble.save_ensemble(config.out, final, NAME, to_json(self.model_config), self.extras, valid)
        return results, final, valid


def _report(recipe, texts, model_config, phases, bag, results, valid_scores) -> dict:
    report = {"model": _model_name(model_config, recipe, "pretraining" in phases, "transfer" in phases),
              "train_examples": len(texts.train.labels), "valid_examples": len(texts.valid.labels),
              "vocab_size": len(texts.vocab), "labels": texts.labels.names,
              "best_epoch": [r.best_epoch for r in results] if len(results) > 1 else results[0].best_epoch,
              "epochs_run": sum(r.epochs_run for r in results), "valid": valid_scores,
              "train_seconds": round(sum(e["seconds"] for r in results for e in r.history), 1),
              "stopped_by_budget": any(r.stopped_by_budget for r in results),
              "max_minutes": recipe.training.max_minutes, "skipped_lines": texts.skipped}
    if bag is not None:
        report["bag_fit"] = bag
    if len(results) > 1:
        report["members"] = [{"seed": recipe.training.seed + k, "best_epoch": r.best_epoch,
                              "valid": r.best_metrics} for k, r in enumerate(results)]
    for name, phase in phases.items():  # its whole wall time counts as training time
        report[name] = phase
        report["train_seconds"] = round(report["train_seconds"] + phase["seconds"], 1)
    return report


def main(recipe: TrainRecipe) -> int:
    check_recipe(recipe)
    config = recipe.training
    budget = Budget.start(config.max_minutes)
    device = setup(config)
    texts = read_and_encode(recipe, config.seed)
    model_config = dataclasses.replace(recipe.model, vocab_size=len(texts.vocab),
                                       num_classes=len(texts.labels))
    ensemble.prepare_out(config.out, model_config.ensemble, config)  # before hours of pretraining
    if model_config.ensemble > 1 and config.out is not None:
        write_run_recipe(config.out, recipe)
    print(f"{len(texts.train.labels)} train / {len(texts.valid.labels)} valid"
          f"{f' / {len(texts.test.labels)} test' if texts.test else ''} texts; "
          f"{len(texts.vocab)} words in the vocabulary; labels {texts.labels.names}; device {device}",
          flush=True)
    baseline = _baseline_first(recipe, texts)
    model = build_classifier(model_config, config.backend)
    offsets, bag = _fit_bag(model, texts, config.seed)
    phases = _start_from_more_data(model, recipe, texts, budget)
    results, final_model, valid_scores = _Training(recipe, texts, model_config, offsets,
                                                   budget).run(model, device)
    report = _report(recipe, texts, model_config, phases, bag, results, valid_scores)
    if texts.test is not None:
        report.update(test_report(final_model, texts.test, len(texts.labels), device,
                                  config.progress))
        report["test"]["skipped_lines"] = texts.skipped.get(str(recipe.data.test), 0)
        report.update(baseline)
    if distributed.from_environment().is_main:
        atomic.write_text(config.out / "report.json", json.dumps(report, indent=1) + "\n")
        print_report(report)
    return 0
