"""The adding problem (Hochreiter & Schmidhuber 1997) and the copy task (Arjovsky et al. 2016).

Adding: each step carries a value in [0, 1] and a marker; exactly two steps are marked (one in each
half) and the target is the sum of their values. Always answering 1 gives MSE = 2 * Var(U[0,1]) = 1/6
~ 0.167, the baseline a memoryless model sits on.

Copy: ten symbols from an alphabet of eight, T blanks, a delimiter, then the model must write the ten
symbols back. Answering blanks and then guessing uniformly costs 10 * log(8) / (T + 20) nats per step.

As in the Cliff experiment, one model per architecture is trained on mixed lengths (a short
curriculum, then every length) and evaluated at each length on fresh sequences.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lstmkit.errors import UsageError
from lstmkit.experiments.common import KINDS, ExperimentResult, RecurrentModel, RunContext, train_steps
from lstmkit.experiments.plots import line_plot

ADDING_BASELINE = 1.0 / 6.0
COPY_SYMBOLS = 8      # data symbols are 1..8; 0 is blank, 9 the delimiter
COPY_LENGTH = 10      # symbols to remember
DELIMITER = COPY_SYMBOLS + 1


def copy_baseline(blanks: int) -> float:
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (blanks + 2 * COPY_LENGTH)


def adding_batch(length: int, count: int, generator: torch.Generator):
    """Inputs (B, T, 2) = (value, marker) and targets (B,)."""
    values = torch.rand(count, length, generator=generator)  # (B, T)
    half = length // 2
    first = torch.randint(0, half, (count,), generator=generator)
    second = torch.randint(half, length, (count,), generator=generator)
    markers = torch.zeros(count, length)  # (B, T)
    rows = torch.arange(count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]  # (B,)
    return torch.stack([values, markers], dim=-1), targets


def copy_batch(blanks: int, count: int, generator: torch.Generator):
    """Input symbols (B, T+20) and target symbols (B, T+20): blanks, then the ten symbols back."""
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (count, COPY_LENGTH), generator=generator)  # (B, 10)
    total = blanks + 2 * COPY_LENGTH
    inputs = torch.zeros(count, total, dtype=torch.long)   # (B, T+20)
    inputs[:, :COPY_LENGTH] = symbols
    inputs[:, COPY_LENGTH + blanks - 1] = DELIMITER
    targets = torch.zeros(count, total, dtype=torch.long)  # (B, T+20)
    targets[:, -COPY_LENGTH:] = symbols
    return inputs, targets


@dataclass
class TaskSettings:
    lengths: list[int]
    hidden_size: int
    steps: int
    lr: float
    batch_size: int = 64
    warmup_fraction: float = 0.2   # shortest length only, then ramp to the longest, then mixed
    ramp_fraction: float = 0.4
    eval_sequences: int = 512

    def validate(self, flag: str, minimum: int) -> None:
        if not self.lengths:
            raise UsageError(f"{flag} needs at least one length")
        bad = [t for t in self.lengths if t < minimum]
        if bad:
            raise UsageError(f"{flag} must be >= {minimum}, got {bad[0]}")

    def length_at(self, step: int, draw: float) -> int:
        """The training length for this step; ``draw`` in [0, 1) picks within the reach."""
        shortest, longest = min(self.lengths), max(self.lengths)
        warmup = self.warmup_fraction * self.steps
        progress_ = 0.0 if step < warmup else min(1.0, (step - warmup) / max(1.0, self.ramp_fraction * self.steps))
        reach = shortest + (longest - shortest) * progress_
        return int(round(shortest + draw * (reach - shortest)))


def _settings(context: RunContext, quick: TaskSettings, full: TaskSettings, lengths: list[int] | None,
              minimum: int) -> TaskSettings:
    settings = quick if context.quick else full
    settings.lengths = sorted(set(lengths or settings.lengths))
    settings.validate("--lengths", minimum)
    return settings


def adding_settings(context: RunContext) -> TaskSettings:
    return _settings(context, TaskSettings([10, 20], hidden_size=8, steps=20, lr=1e-2, batch_size=16,
                                           eval_sequences=64),
                     TaskSettings([50, 100, 200], hidden_size=64, steps=2000, lr=5e-3),
                     context.adding_lengths, 2)


def copy_settings(context: RunContext) -> TaskSettings:
    return _settings(context, TaskSettings([5, 10], hidden_size=8, steps=20, lr=1e-2, batch_size=16,
                                           eval_sequences=64),
                     TaskSettings([10, 20, 40], hidden_size=64, steps=3000, lr=1e-2),
                     context.copy_lengths, 1)


def _adding_loss(model, inputs, targets):
    return F.mse_loss(model(inputs)[:, -1, 0], targets)


def _copy_loss(model, inputs, targets):
    logits = model(inputs)  # (B, T+20, 9)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


TASKS = {
    # name: (batch maker, loss, input size, output size, vocabulary size for an embedding)
    "adding": (adding_batch, _adding_loss, 2, 1, None),
    "copy": (copy_batch, _copy_loss, 16, COPY_SYMBOLS + 1, COPY_SYMBOLS + 2),
}


def train(task: str, kind: str, settings: TaskSettings, seed: int, show_progress: bool):
    make_batch, loss_fn, input_size, output_size, vocab = TASKS[task]
    torch.manual_seed(seed)
    model = RecurrentModel(kind, input_size, settings.hidden_size, output_size, vocab_size=vocab)
    data = torch.Generator().manual_seed(seed)  # same batches for both architectures

    def next_batch(step: int):
        length = settings.length_at(step, float(torch.rand((), generator=data)))
        return make_batch(length, settings.batch_size, data)

    return train_steps(f"{task} {kind}", model, settings.steps, next_batch, loss_fn, settings.lr,
                       seed, show_progress).eval()


@torch.no_grad()
def evaluate(task: str, model, settings: TaskSettings, seed: int) -> dict[int, dict[str, float]]:
    make_batch, loss_fn = TASKS[task][:2]
    scores = {}
    for length in settings.lengths:
        data = torch.Generator().manual_seed(seed * 1000 + length + 7)
        inputs, targets = make_batch(length, settings.eval_sequences, data)
        score = {"loss": float(loss_fn(model, inputs, targets))}
        if task == "copy":  # accuracy on the ten recalled symbols
            predicted = model(inputs)[:, -COPY_LENGTH:].argmax(-1)
            score["recall_accuracy"] = float((predicted == targets[:, -COPY_LENGTH:]).float().mean())
        scores[length] = score
    return scores


def _run(task: str, context: RunContext, out_dir, settings: TaskSettings) -> ExperimentResult:
    started = time.perf_counter()
    scores = {}
    for kind in KINDS:
        model = train(task, kind, settings, context.seed, context.show_progress)
        scores[kind] = evaluate(task, model, settings, context.seed)
    lengths = settings.lengths
    metrics = {"lengths": lengths,
               "settings": {"hidden_size": settings.hidden_size, "steps": settings.steps,
                            "batch_size": settings.batch_size, "lr": settings.lr}}
    for kind in KINDS:
        metrics[kind] = {str(t): s for t, s in scores[kind].items()}
    if task == "adding":
        baselines = {t: ADDING_BASELINE for t in lengths}
        metrics["baseline_mse"] = ADDING_BASELINE
        headers = ["T", "RNN MSE", "LSTM MSE", "baseline"]
        rows = [[t, scores["rnn"][t]["loss"], scores["lstm"][t]["loss"], ADDING_BASELINE] for t in lengths]
    else:
        baselines = {t: copy_baseline(t) for t in lengths}
        metrics["baseline_nats"] = {str(t): b for t, b in baselines.items()}
        headers = ["T", "RNN nats", "LSTM nats", "baseline", "RNN recall", "LSTM recall"]
        rows = [[t, scores["rnn"][t]["loss"], scores["lstm"][t]["loss"], baselines[t],
                 scores["rnn"][t]["recall_accuracy"], scores["lstm"][t]["recall_accuracy"]]
                for t in lengths]
    figure = line_plot(
        out_dir / f"{task}.png", lengths,
        {"tanh RNN": [scores["rnn"][t]["loss"] for t in lengths],
         "LSTM": [scores["lstm"][t]["loss"] for t in lengths],
         "memoryless baseline": [baselines[t] for t in lengths]},
        xlabel="sequence length T" if task == "adding" else "blanks T between symbols and recall",
        ylabel="test MSE" if task == "adding" else "test cross-entropy (nats per step)",
        title="Adding problem" if task == "adding" else "Copy task", logy=True,
        styles={"memoryless baseline": "--"})
    longest = lengths[-1]
    if task == "adding":
        explanation = (
            f"Both models (hidden {settings.hidden_size}) trained {settings.steps} steps on the same "
            f"batches of mixed lengths up to {longest}. At T = {longest} the LSTM's test MSE is "
            f"{scores['lstm'][longest]['loss']:.4f} and the RNN's {scores['rnn'][longest]['loss']:.4f}, "
            f"against {ADDING_BASELINE:.3f} for always answering 1.")
    else:
        explanation = (
            f"Both models (hidden {settings.hidden_size}) trained {settings.steps} steps on mixed "
            f"numbers of blanks up to {longest}. With {longest} blanks the LSTM recalls "
            f"{scores['lstm'][longest]['recall_accuracy']:.1%} of the symbols and the RNN "
            f"{scores['rnn'][longest]['recall_accuracy']:.1%} (a guess recalls 12.5%); the memoryless "
            f"baseline is {baselines[longest]:.4f} nats per step.")
    title = "Adding problem" if task == "adding" else "Copy task"
    rnn_last, lstm_last = scores["rnn"][longest]["loss"], scores["lstm"][longest]["loss"]
    if task == "adding":
        headline = (f"Adding at T={longest}: LSTM MSE {lstm_last:.4f}, RNN {rnn_last:.4f} "
                    f"(baseline {ADDING_BASELINE:.3f})")
    else:
        headline = (f"Copy with {longest} blanks: LSTM {lstm_last:.3f} nats, RNN {rnn_last:.3f} "
                    f"(baseline {baselines[longest]:.3f}); LSTM recall "
                    f"{scores['lstm'][longest]['recall_accuracy']:.1%}")
    return ExperimentResult(task, title, metrics, headers, rows, [figure], explanation,
                            headline=headline, seconds=time.perf_counter() - started)


def run_adding(context: RunContext, out_dir) -> ExperimentResult:
    return _run("adding", context, out_dir, adding_settings(context))


def run_copy(context: RunContext, out_dir) -> ExperimentResult:
    return _run("copy", context, out_dir, copy_settings(context))
