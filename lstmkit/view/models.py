"""The one place where the viewer calls task code: loading a trained model from a run folder, its
vocabulary or scaler, reading an input the way the task does, and its running prediction.

``load(directory)`` returns a ``TaskView`` whose ``view(text=..., path=...)`` gives what a page
shows: the input's steps, the traced layers of one sequence, and the prediction at every step.
- language model: next-token probabilities, one pass (fed in chunks, the state carried);
- sentiment: class probabilities of the text up to each token (every prefix run as its own text,
  so a bidirectional model reads only the prefix);
- forecast: the series read in one pass; the forecast at step t is what the model gives for the
  series up to t (its forward on that prefix: the baseline read off the prefix plus the head on
  the LSTM's output at t).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lstmkit.errors import UsageError
from lstmkit.view.content import LayerTrace, RunningPrediction, ShownInput, traced
from lstmkit.view.predictions import NextTokenCollector, class_prediction, forecast_prediction

CHUNK = 2000          # language-model steps per forward call: bounds the (T, V) scores in memory
PREFIX_BATCH = 64     # sentiment prefixes per forward call
VIEWED = ("lm", "sentiment", "forecast")
View = tuple[ShownInput, list[LayerTrace], RunningPrediction]


class TaskView:
    """A trained task model ready to be viewed."""

    task = ""
    input_kind = "text"  # "text" (--text or --file) or "series" (--file, a CSV)

    def __init__(self, directory: Path, checkpoint) -> None:
        self.directory = directory
        self.checkpoint = checkpoint

    @property
    def title(self) -> str:
        return f"{self.task} model {self.directory}"

    def view(self, source: str) -> View:
        """source: the text (input_kind "text") or the CSV file's path ("series")."""
        raise NotImplementedError


class LanguageModelView(TaskView):
    task = "lm"

    def __init__(self, directory, checkpoint) -> None:
        from lstmkit.data.corpus import TokenVocabulary
        from lstmkit.tasks.language_model import model_from_config

        super().__init__(directory, checkpoint)
        self.vocab = TokenVocabulary.from_dict(checkpoint.extras["vocab"])
        self.model = model_from_config(checkpoint.model_config)
        self.model.load_state_dict(checkpoint.state_dict)

    def view(self, text: str) -> View:
        from lstmkit.data.corpus import EOS, tokenize

        tokens = tokenize(text, self.vocab.level)
        if not tokens:
            raise UsageError("the input has no tokens to show")
        ids = self.vocab.encode(tokens, what="the input").view(1, -1)  # (1, T); refuses unseen characters
        labels = ["\n" if t == EOS else t for t in self.vocab.itos]
        collector = NextTokenCollector(labels)

        def run():
            state = None
            for start in range(0, ids.shape[1], CHUNK):
                scores, state = self.model(ids[:, start:start + CHUNK], state)  # (1, chunk, V)
                collector.add(scores[0])

        _, traces = traced(self.model, run)
        unknown = [t not in self.vocab.stoi for t in tokens] if self.vocab.level == "word" else None
        shown = ShownInput(["\n" if t == EOS else t for t in tokens],
                           joiner="" if self.vocab.level == "char" else " ", unknown=unknown)
        return shown, traces, collector.prediction()


class SentimentView(TaskView):
    task = "sentiment"

    def __init__(self, directory, checkpoint) -> None:
        from lstmkit.tasks.sentiment import load_model

        super().__init__(directory, checkpoint)
        self.model, self.vocab, self.labels, self.config = load_model(directory, torch.device("cpu"))

    def view(self, text: str) -> View:
        from lstmkit.data.batching import truncate
        from lstmkit.data.text import tokenize

        every = tokenize(text, self.config["lowercase"])
        tokens = truncate(every, self.config["max_len"])
        if not tokens:
            raise UsageError("the input has no words to show")
        ids = torch.tensor([self.vocab.encode(tokens)])  # (1, T)
        steps = ids.shape[1]
        _, traces = traced(self.model, lambda: self.model(ids, torch.tensor([steps])))
        prefixes = torch.zeros(steps, steps, dtype=torch.long)  # (T, T): row t = the first t+1 tokens
        for t in range(steps):
            prefixes[t, :t + 1] = ids[0, :t + 1]
        lengths = torch.arange(1, steps + 1)
        self.model.eval()
        with torch.no_grad():
            logits = torch.cat([self.model(prefixes[a:a + PREFIX_BATCH, :a + PREFIX_BATCH],
                                           lengths[a:a + PREFIX_BATCH])
                                for a in range(0, steps, PREFIX_BATCH)])  # (T, C)
        note = (f"The model reads the first {steps} of the text's {len(every)} words; the rest is not shown."
                if len(every) > steps else "")
        unknown = [t not in self.vocab.index for t in tokens]
        return (ShownInput(tokens, joiner=" ", unknown=unknown, note=note), traces,
                class_prediction(logits, self.labels.names))


class ForecastView(TaskView):
    task = "forecast"
    input_kind = "series"

    def __init__(self, directory, checkpoint) -> None:
        from lstmkit.tasks.forecast import load_forecaster

        super().__init__(directory, checkpoint)
        self.model, self.config, self.scaler = load_forecaster(directory)

    def view(self, path: str) -> View:
        from lstmkit.data.series import read_series_csv
        from lstmkit.tasks import forecast

        raw = read_series_csv(path, self.config["columns"], missing=self.config["missing"]).values  # (T, C)
        scaled = self.scaler.transform(forecast._to_model_space(raw, self.config["log"], path))
        inputs = torch.from_numpy(scaled.astype(np.float32))[None]  # (1, T, C)
        steps = inputs.shape[1]
        _, traces = traced(self.model, lambda: self.model(inputs))
        with torch.no_grad():
            outputs, _ = self.model.lstm(inputs)  # (1, T, H)
            heads = self.model.head(outputs[0])  # (T, horizon)
            shortest = self.config["season"] if self.config.get("baseline") == "seasonal" else 1
            scaled_forecasts = np.full(heads.shape, np.nan)
            for t in range(shortest - 1, steps):
                scaled_forecasts[t] = (self.model.base_forecast(inputs[:, :t + 1])[0] + heads[t]).numpy()
        forecasts = forecast._to_original_units(scaled_forecasts, self.scaler, self.config["log"])
        target = raw[:, 0]
        note = (f"The model read the whole series in one pass; it was trained on windows of "
                f"{self.config['window']} steps. The forecast at a step is the model's for the series up to it.")
        shown = ShownInput([f"{v:.4g}" for v in target], joiner=" ", series=target, note=note)
        return shown, traces, forecast_prediction(forecasts)


def classes_at_every_step(model: torch.nn.Module, ids: torch.Tensor, tokens: list[str], labels: list[str],
                          joiner: str = " ") -> View:
    """A model whose output (1, T, C) scores C classes at every step of ids (1, T), such as the
    demo's Cliff model (the species of my pet, read at the probe's last word)."""
    logits, traces = traced(model, lambda: model(ids))
    return ShownInput(list(tokens), joiner=joiner), traces, class_prediction(logits[0], labels)


def load(directory: str | Path) -> TaskView:
    """The model of a run folder or checkpoint, for the tasks with text or series input."""
    from lstmkit.checkpoint import load_checkpoint, run_or_checkpoint_dir

    directory = run_or_checkpoint_dir(directory)
    checkpoint = load_checkpoint(directory, task=None)
    views = {cls.task: cls for cls in (LanguageModelView, SentimentView, ForecastView)}
    if checkpoint.task not in views:
        raise UsageError(f"{directory}: a {checkpoint.task!r} model; `lstmkit view` shows models that read "
                         f"text or a series: {', '.join(VIEWED)}")
    return views[checkpoint.task](Path(directory), checkpoint)
