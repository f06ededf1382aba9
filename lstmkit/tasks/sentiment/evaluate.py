"""Scoring a sentiment model: its logits over batches of texts, accuracy and F1 (scikit-learn),
the fitted n-gram bag alone and the bag-of-words baseline beside it, and the printed report.
`test_report` is the one place test scores are made: at the end of training and by
`lstmkit evaluate` (evaluate_main)."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from lstmkit.data.batching import text_batches
from lstmkit.tasks.sentiment.baseline import BagOfWordsLogReg
from lstmkit.training.progress import progress


def predict_logits(model, batches, device, show: bool = False, description: str = "scoring",
                   part: str = "model") -> torch.Tensor:
    """(N, C) logits in the original order of the texts (batches carry each row's position);
    part "bag": the fitted n-gram bag's logits alone."""
    model.eval()
    outputs, positions = [], []
    with torch.no_grad():
        for batch in progress(batches, show, description):
            ids = batch.ids.to(device)
            logits = bag_part(model)(ids, batch.lengths) if part == "bag" else model(ids, batch.lengths)
            outputs.append(logits.float().cpu())  # (B, C)
            positions.append(batch.index)
    logits = torch.empty(sum(len(p) for p in positions), outputs[0].shape[1])
    logits[torch.cat(positions)] = torch.cat(outputs)
    return logits


def bag_part(model):
    """The module whose `bag(ids, lengths)` gives the fitted bag's logits (one classifier or an
    ensemble, whose members share one bag)."""
    member = model.members[0] if hasattr(model, "members") else model
    return member.bag


def has_bag(model) -> bool:
    member = model.members[0] if hasattr(model, "members") else model
    return getattr(member, "bag_weight", None) is not None


def classification_metrics(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict:
    """Accuracy, and F1: of class 1 (the positive label) for two classes, else the macro average."""
    from sklearn.metrics import accuracy_score, f1_score

    y_true, y_pred = target.numpy(), predicted.numpy()
    average = "binary" if num_classes == 2 else "macro"
    f1 = f1_score(y_true, y_pred, labels=list(range(num_classes)), average=average,
                  pos_label=1, zero_division=0.0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "f1": float(f1), "n": len(target)}


def scores(logits: torch.Tensor, targets: list[int], num_classes: int) -> dict:
    target = torch.tensor(targets)
    return {"loss": F.cross_entropy(logits, target).item(),
            **classification_metrics(logits.argmax(1), target, num_classes)}


def baseline_scores(train_tokens, train_targets, test_tokens, test_targets, num_classes: int,
                    seed: int) -> dict:
    """The bag-of-words baseline fitted on these training texts, scored on the test texts."""
    baseline = BagOfWordsLogReg(seed=seed).fit(train_tokens, train_targets, num_classes)
    probabilities = baseline.predict_proba(test_tokens)
    return {**scores(torch.log(probabilities), test_targets, num_classes), "l2": baseline.l2}


def test_report(model, test, num_classes: int, device, show: bool, batch_size: int = 256) -> dict:
    """{"test": the model's scores, "bag": the fitted bag's alone (when the model has one)} on the
    encoded test texts."""
    batches = list(text_batches(test.sequences, test.labels, batch_size))
    report = {"test": scores(predict_logits(model, batches, device, show, "test"), test.labels,
                             num_classes)}
    if has_bag(model):
        report["bag"] = scores(predict_logits(model, batches, device, part="bag"), test.labels,
                               num_classes)
    return report


def print_report(report: dict) -> None:
    valid = report.get("valid")
    members = report.get("members")
    which = (f"ensemble of {len(members)} (best epochs {', '.join(str(m['best_epoch']) for m in members)})"
             if members else f"best epoch {report.get('best_epoch')}")
    if valid:
        print(f"{which}: valid accuracy {valid['acc']:.4f}  F1 {valid['f1']:.4f}")
    if "test" not in report:
        return
    rows = [(report["model"], report["test"]),
            ("its n-gram bag alone", report.get("bag")),
            ("bag-of-words logreg (baseline)", report.get("baseline")),
            ("bag-of-words logreg, + the --pretrain-on texts", report.get("baseline_with_transfer"))]
    rows = [(name, s) for name, s in rows if s]
    width = max(len(name) for name, _ in rows)
    skipped = report["test"].get("skipped_lines", 0)
    title = f"test ({report['test']['n']} texts{f'; {skipped} bad lines skipped' if skipped else ''})"
    print(f"{title:<{width + 4}}accuracy  F1")
    for name, s in rows:
        print(f"  {name:<{width}}  {s['accuracy']:.4f}    {s['f1']:.4f}")


# ---- lstmkit evaluate ------------------------------------------------------------------------------

def _data_settings(run: dict, options):
    """How to read the texts: the run's data settings, with the flags given here on top."""
    from lstmkit.recipe import from_json
    from lstmkit.tasks.sentiment.config import SentimentData

    saved = run.get("data") or {"train": None}
    data = from_json(SentimentData, saved)
    given = {name: getattr(options, name) for name in ("format", "text_column", "label_column",
                                                       "encoding") if getattr(options, name) is not None}
    return dataclasses.replace(data, **given, skip_bad=options.skip_bad,
                               train=options.train or data.train)


def _load(directory: Path, device, backend: str):
    """(model, its config, vocabulary, labels): the run's best/, or the members an interrupted
    ensemble finished."""
    from lstmkit.data.labels import LabelSet
    from lstmkit.data.vocabulary import Vocabulary
    from lstmkit.tasks.saved_model import load_model
    from lstmkit.tasks.sentiment.model import MODEL, SentimentEnsemble
    from lstmkit.training.checkpoint import resolve_checkpoint_dir, run_or_checkpoint_dir

    found = run_or_checkpoint_dir(directory)
    members = [found] if resolve_checkpoint_dir(found) is not None else \
        sorted(Path(directory).glob("members/*/best"), key=lambda p: int(p.parent.name))
    loaded = [load_model(m, MODEL, device=device, backend=backend) for m in members]
    if len(loaded) > 1:
        print(f"{directory}: the ensemble was interrupted; scoring the {len(loaded)} member(s) "
              f"that finished an epoch", file=sys.stderr)
    model = loaded[0].model if len(loaded) == 1 else SentimentEnsemble([m.model for m in loaded]).to(device)
    extras = loaded[0].extras
    return model, loaded[0].config, Vocabulary.from_json(extras["vocab"]), LabelSet.from_json(extras["labels"])


def evaluate_main(recipe) -> int:
    """`lstmkit evaluate` for a sentiment run: the test scores of its model, of its bag alone and of
    the baseline fitted on the texts the run trained on, printed and written as JSON."""
    from lstmkit.data.tokenizer import Tokenizer
    from lstmkit.tasks.evaluation import read_run_recipe, write_report
    from lstmkit.tasks.sentiment.texts import (encode_examples, kept_tokens, read_labelled,
                                               training_examples)
    from lstmkit.training import select_device

    options = recipe.evaluate
    run = read_run_recipe(options.model)
    data = _data_settings(run, options)
    device = select_device(options.device)
    model, config, vocab, labels = _load(options.model, device, options.backend)
    tokenizer = Tokenizer("text", lowercase=config.lowercase)
    skipped: dict[str, int] = {}
    examples = read_labelled(options.test, data, part="test", skipped=skipped)
    test = encode_examples(examples, [tokenizer(e.text) for e in examples], vocab, labels,
                           kept_tokens(config))
    report = {"model": _name_of(options.model, run), "labels": labels.names,
              **test_report(model, test, len(labels), device, options.progress, options.batch_size)}
    report["test"]["skipped_lines"] = skipped.get(str(options.test), 0)
    if options.baseline and data.train is not None:
        train, _ = training_examples(data, run.get("training", {}).get("seed", 0))
        report["baseline"] = baseline_scores(
            [tokenizer(e.text) for e in train], [labels.encode(e.label, e.where) for e in train],
            test.tokens, test.labels, len(labels), run.get("training", {}).get("seed", 0))
    elif options.baseline:
        print("no baseline: the run's training texts are unknown (no recipe.json); name them "
              "with --train FILE", file=sys.stderr)
    print_report(report)
    print(f"report: {write_report(options, report)}")
    return 0


def _name_of(directory: Path, run: dict) -> str:
    """The model's name as the run's report has it."""
    for folder in (Path(directory), Path(directory).parent):
        if (folder / "report.json").is_file():
            try:
                return json.loads((folder / "report.json").read_text())["model"]
            except (OSError, ValueError, KeyError, TypeError, RecursionError):  # only a name: a
                break                                                     # damaged report costs it
    model = run.get("model") if isinstance(run.get("model"), dict) else {}
    return "the model" if not model else "BiLSTM" + (" + n-gram bag" if model.get("bag_buckets") else "")
