"""Scoring a sentiment model: its logits over batches of texts, accuracy and F1 (scikit-learn),
the bag-of-words baseline beside it, and the printed report."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lstmkit.tasks.sentiment.baseline import BagOfWordsLogReg


def predict_logits(model, batches, device) -> torch.Tensor:
    """(N, C) logits in the original order of the texts (batches carry each row's position)."""
    model.eval()
    outputs, positions = [], []
    with torch.no_grad():
        for batch in batches:
            outputs.append(model(batch.ids.to(device), batch.lengths).float().cpu())  # (B, C)
            positions.append(batch.index)
    logits = torch.empty(sum(len(p) for p in positions), outputs[0].shape[1])
    logits[torch.cat(positions)] = torch.cat(outputs)
    return logits


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


def print_report(report: dict) -> None:
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
    rows = [(name, s) for name, s in rows if s]
    width = max(len(name) for name, _ in rows)
    print(f"{'test (' + str(report['test']['n']) + ' texts)':<{width + 4}}accuracy  F1")
    for name, s in rows:
        print(f"  {name:<{width}}  {s['accuracy']:.4f}    {s['f1']:.4f}")
