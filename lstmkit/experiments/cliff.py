"""Cliff: remembering a pet's species across a growing distance of distractor text.

One tanh RNN and one LSTM of the same size read the same stories (same seed, same batches) and
predict the species from the hidden state at the probe's last word. Training mixes distances with a
short curriculum (short stories first), and evaluation reports accuracy per distance on fresh
stories, so one model per architecture covers every distance.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lstmkit.errors import UsageError
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.experiments.common import KINDS, ExperimentResult, RecurrentModel, RunContext, train_steps
from lstmkit.experiments.plots import line_plot
from lstmkit.experiments.stories import StoryConfig, make_story, story_vocabulary

NAME = "cliff"
TITLE = "Cliff: remembering across a distance"


@dataclass
class CliffSettings:
    distances: list[int] = field(default_factory=lambda: [0, 2, 5, 10, 20, 50, 100, 200])
    stories: StoryConfig = field(default_factory=StoryConfig)
    embedding_size: int = 32
    hidden_size: int = 64
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    # Curriculum: the first part of training uses the shortest stories only (a tanh RNN learns
    # nothing, even at short distances, when long ones are mixed in from the start), then the longest distance sampled ramps up to the
    # longest shown. Distances are drawn log-uniformly below that reach, so short stories stay
    # common and each model keeps learning at the distances it can manage.
    warmup_fraction: float = 0.3
    ramp_fraction: float = 0.5
    warmup_distance: int = 1
    eval_stories: int = 256            # per distance

    @classmethod
    def quick(cls) -> "CliffSettings":
        return cls(distances=[2, 8], embedding_size=8, hidden_size=16, steps=30, batch_size=16,
                   eval_stories=32)

    def validate(self) -> None:
        self.stories.validate()
        if not self.distances:
            raise UsageError("--distances needs at least one distance")
        bad = [d for d in self.distances if d < 0]
        if bad:
            raise UsageError(f"--distances must be >= 0 tokens, got {bad[0]}")
        if self.hidden_size < 1 or self.steps < 1:
            raise ValueError("the hidden size and the number of steps must be >= 1")


def make_batch(distance: int, count: int, config: StoryConfig, vocab: Vocabulary,
               rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T), left-padded so every probe ends at the last step, and answers (B,)."""
    stories = [make_story(distance, config, rng) for _ in range(count)]
    length = max(len(s.tokens) for s in stories)
    ids = torch.zeros(count, length, dtype=torch.long)  # (B, T), 0 = padding
    for row, story in enumerate(stories):
        encoded = vocab.encode(story.tokens)
        ids[row, length - len(encoded):] = torch.tensor(encoded)
    answers = torch.tensor([s.answer for s in stories])  # (B,)
    return ids, answers


def build_model(kind: str, settings: CliffSettings, vocab: Vocabulary) -> RecurrentModel:
    """Embedding -> RNN or LSTM -> species at the probe's last word."""
    return RecurrentModel(kind, settings.embedding_size, settings.hidden_size,
                          settings.stories.species, vocab_size=len(vocab))


def curriculum_reach(step: int, settings: CliffSettings) -> int:
    """The longest distance sampled at this step; each batch draws its distance from [0, reach]."""
    longest = max(settings.distances)
    warmup = settings.warmup_fraction * settings.steps
    ramp = max(1.0, settings.ramp_fraction * settings.steps)
    start = min(settings.warmup_distance, longest)
    if step < warmup:
        return start
    return round(start + (longest - start) * min(1.0, (step - warmup) / ramp))


def sample_distance(reach: int, rng: random.Random) -> int:
    """Log-uniform over 0..reach: as many stories in 0-9 as in 10-99 as in 100-999."""
    return min(reach, int(math.exp(rng.uniform(0.0, math.log(reach + 2)))) - 1)


def train(kind: str, settings: CliffSettings, seed: int, show_progress: bool) -> RecurrentModel:
    """Train one architecture; the data stream depends only on the seed, not on the kind."""
    vocab = story_vocabulary()
    torch.manual_seed(seed)
    model = build_model(kind, settings, vocab)
    rng = random.Random(seed)

    def next_batch(step: int):
        reach = curriculum_reach(step, settings)
        return make_batch(sample_distance(reach, rng), settings.batch_size, settings.stories, vocab, rng)

    def loss(model, ids, answers):
        return F.cross_entropy(model(ids)[:, -1], answers)  # (B, species) at the probe's last word

    return train_steps(f"cliff {kind}", model, settings.steps, next_batch, loss, settings.lr, seed,
                       show_progress).eval()


@torch.no_grad()
def evaluate(model: RecurrentModel, settings: CliffSettings, seed: int) -> dict[int, float]:
    """Accuracy per distance on stories the model never saw (same stories for every model)."""
    vocab = story_vocabulary()
    accuracy = {}
    for distance in settings.distances:
        rng = random.Random(f"cliff-eval-{seed}-{distance}")
        correct, seen = 0, 0
        for start in range(0, settings.eval_stories, 128):
            count = min(128, settings.eval_stories - start)
            ids, answers = make_batch(distance, count, settings.stories, vocab, rng)
            correct += int((model(ids)[:, -1].argmax(-1) == answers).sum())
            seen += count
        accuracy[distance] = correct / seen
    return accuracy


def rnn_state(accuracy: float, chance: float) -> str:
    """A word for the table: does the RNN still remember at this distance?"""
    if accuracy >= 0.9:
        return "remembers"
    if accuracy <= chance + 0.10:
        return "forgotten"
    return "fading"


def trained_models(context: RunContext, settings: CliffSettings) -> dict[str, RecurrentModel]:
    """Train (once per run) the RNN and the LSTM; the gradient and gate experiments reuse them."""
    for kind in KINDS:
        if kind not in context.cliff_models:
            context.cliff_models[kind] = train(kind, settings, context.seed, context.show_progress)
    return context.cliff_models


def settings_for(context: RunContext) -> CliffSettings:
    settings = CliffSettings.quick() if context.quick else CliffSettings()
    options = context.cliff_options
    if options.get("distances"):
        settings.distances = sorted(set(options["distances"]))
    settings.stories = StoryConfig(
        species=options.get("species") or settings.stories.species,
        names=options.get("names") or settings.stories.names,
        pets_per_story=options.get("pets") or settings.stories.pets_per_story)
    for key in ("species", "names", "pets"):
        if options.get(key) is not None and options[key] <= 0:
            raise UsageError(f"--{key} must be >= 1, got {options[key]}")
    settings.validate()
    return settings


def run(context: RunContext, out_dir) -> ExperimentResult:
    started = time.perf_counter()
    settings = settings_for(context)
    models = trained_models(context, settings)
    accuracy = {kind: evaluate(models[kind], settings, context.seed) for kind in KINDS}
    chance = settings.stories.chance
    distances = settings.distances

    rows = [[d, accuracy["rnn"][d], accuracy["lstm"][d], chance, rnn_state(accuracy["rnn"][d], chance)]
            for d in distances]
    breakdown = next((d for d in distances if accuracy["rnn"][d] < 0.9), None)
    forgotten = next((d for d in distances if accuracy["rnn"][d] <= chance + 0.10), None)
    longest = distances[-1]
    metrics = {
        "distances": distances,
        "accuracy": {kind: {str(d): a for d, a in accuracy[kind].items()} for kind in KINDS},
        "chance": chance,
        "rnn_breaks_down_at": breakdown,
        "rnn_at_chance_from": forgotten,
        "longest_distance": longest,
        "lstm_at_longest": accuracy["lstm"][longest],
        "rnn_at_longest": accuracy["rnn"][longest],
        "settings": {"hidden_size": settings.hidden_size, "steps": settings.steps, "lr": settings.lr,
                     "batch_size": settings.batch_size, "species": settings.stories.species,
                     "names": settings.stories.names, "pets_per_story": settings.stories.pets_per_story,
                     "eval_stories_per_distance": settings.eval_stories},
    }
    figure = line_plot(
        out_dir / "cliff_accuracy.png", distances,
        {"tanh RNN": [accuracy["rnn"][d] for d in distances],
         "LSTM": [accuracy["lstm"][d] for d in distances]},
        xlabel="distance (tokens of distractor text before the probe)", ylabel="accuracy",
        title="Cliff: which species is my pet?", hline=(chance, f"chance = 1/{settings.stories.species}"),
        ylim=(0, 1.02), logx=True)
    explanation = (
        f"Each story introduces {settings.stories.pets_per_story - 1} other person's pet(s) and then "
        f"mine (all with different names and species), then a number of tokens of pet-free "
        f"sentences, then \"however , NAME , my pet\"; the answer is my pet's species. "
        f"Both models (hidden size {settings.hidden_size}) were trained on the same "
        f"{settings.steps} batches of {settings.batch_size} stories with mixed distances and are "
        f"scored on {settings.eval_stories} unseen stories per distance. Chance is "
        f"{chance:.1%}. At {longest} tokens the LSTM scores {accuracy['lstm'][longest]:.1%} and the "
        f"RNN {accuracy['rnn'][longest]:.1%}"
        + (f"; the RNN falls below 90% from {breakdown} tokens." if breakdown is not None
           else "; the RNN stays above 90% at every distance shown.")
        + " Other seeds can end differently for the RNN: it sometimes learns to make the distractor "
          "words harmless and hold the species in a stable state (see docs/demo.md)."
    )
    headline = (f"Cliff at {longest} tokens: LSTM {accuracy['lstm'][longest]:.1%}, RNN "
                f"{accuracy['rnn'][longest]:.1%} (chance {chance:.1%}); RNN below 90% from "
                f"{breakdown if breakdown is not None else 'nowhere shown'}")
    return ExperimentResult(NAME, TITLE, metrics,
                            ["distance", "RNN acc", "LSTM acc", "chance", "RNN"], rows,
                            [figure], explanation, headline=headline,
                            seconds=time.perf_counter() - started)
