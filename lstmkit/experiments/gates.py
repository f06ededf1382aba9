"""What the gates did: the trained Cliff LSTM's gates, recorded with ``lstmkit.trace``.

Over many stories we find the units whose cell state, just before the probe, tells my pet's
species apart (the share of the cell state's variance explained by the species, an ANOVA R^2).
For those units we report the forget gate over the distractors (held near 1 keeps the memory) and
the input gate at my pet's species word against elsewhere (open to write it), and draw both over
the words of one story, as a figure and as coloured text in the report.
"""
from __future__ import annotations

import html
import random
import time

import torch

import lstmkit
from lstmkit.experiments import cliff
from lstmkit.experiments.common import ExperimentResult, RunContext
from lstmkit.experiments.plots import gate_heatmap
from lstmkit.experiments.report import write_viewer_page
from lstmkit.experiments.stories import ALL_SPECIES, Story, Vocabulary, make_story

NAME = "gates"
TITLE = "What the gates did"
STORIES = 256
TOP_UNITS = 4


def encode_stories(stories: list[Story], vocab: Vocabulary) -> tuple[torch.Tensor, list[int]]:
    """Token ids (B, T) left-padded, and each story's padding offset."""
    length = max(len(s.tokens) for s in stories)
    ids = torch.zeros(len(stories), length, dtype=torch.long)  # (B, T)
    offsets = []
    for row, story in enumerate(stories):
        offsets.append(length - len(story.tokens))
        ids[row, offsets[-1]:] = torch.tensor(vocab.encode(story.tokens))
    return ids, offsets


def species_r2(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per unit, the share of variance across stories explained by the label: values (B, H)."""
    total = values.var(dim=0, unbiased=False) + 1e-12                     # (H,)
    within = torch.zeros_like(total)
    for label in labels.unique():
        group = values[labels == label]
        within += group.var(dim=0, unbiased=False) * len(group) / len(values)
    return 1.0 - within / total                                            # (H,)


def story_distance(context: RunContext, settings: cliff.CliffSettings) -> int:
    """A distance long enough to show holding, short enough for one readable row of words."""
    longest = max(settings.distances)
    return min(longest, 8 if context.quick else 40)


@torch.no_grad()
def run(context: RunContext, out_dir) -> ExperimentResult:
    started = time.perf_counter()
    settings = cliff.settings_for(context)
    model = cliff.trained_models(context, settings)["lstm"]
    vocab = Vocabulary()
    distance = story_distance(context, settings)
    rng = random.Random(f"gates-{context.seed}")
    count = 64 if context.quick else STORIES
    stories = [make_story(distance, settings.stories, rng) for _ in range(count)]
    ids, offsets = encode_stories(stories, vocab)

    with lstmkit.trace(model) as recording:
        model(ids)
    record = recording.get(layer=0, direction="forward")  # batch_first: (B, T, H) each
    rows = torch.arange(len(stories))
    mention = torch.tensor([o + s.mention for o, s in zip(offsets, stories)])          # (B,)
    before_probe = torch.tensor([o + s.probe_start - 1 for o, s in zip(offsets, stories)])
    answers = torch.tensor([s.answer for s in stories])

    r2 = species_r2(record.c[rows, before_probe], answers)                 # (H,)
    # Mean forget gate of each unit over each story's distractors: a unit that carries the
    # species by itself holds its cell (f near 1) rather than rewriting it at every step.
    forget_per_unit = torch.stack([
        record.f[b, offsets[b] + s.probe_start - distance:offsets[b] + s.probe_start].mean(0)
        for b, s in enumerate(stories)]).mean(0)                            # (H,)
    informative = (r2 >= 0.5).nonzero().flatten()
    if len(informative) < TOP_UNITS:
        informative = r2.argsort(descending=True)[:TOP_UNITS]
    units = informative[forget_per_unit[informative].argsort(descending=True)][:TOP_UNITS].tolist()

    # Gate statistics for the chosen units, per story, over its own positions.
    # |c_t - c_{t-1}|: how much the cell is rewritten at each step (the cell before step 0 is 0).
    cell_change = (record.c - torch.cat([torch.zeros_like(record.c[:, :1]), record.c[:, :-1]], 1)).abs()
    forget_hold, input_at_mention, input_over_distractors = [], [], []
    change_at_intro, change_over_distractors = [], []
    for b, story in enumerate(stories):
        distractors = slice(offsets[b] + story.probe_start - distance, offsets[b] + story.probe_start)
        my_intro = slice(int(mention[b]), int(mention[b]) + 4)  # "dog named cliff ."
        forget_hold.append(record.f[b, distractors][:, units].mean())
        input_at_mention.append(record.i[b, mention[b], units].mean())
        input_over_distractors.append(record.i[b, distractors][:, units].mean())
        change_at_intro.append(cell_change[b, my_intro][:, units].mean())
        change_over_distractors.append(cell_change[b, distractors][:, units].mean())
    metrics = {
        "distance": distance,
        "units": units,
        "species_r2": [float(r2[u]) for u in units],
        "mean_species_r2_all_units": float(r2.mean()),
        "forget_gate_over_distractors": float(torch.stack(forget_hold).mean()),
        "input_gate_at_my_pets_species": float(torch.stack(input_at_mention).mean()),
        "input_gate_over_distractors": float(torch.stack(input_over_distractors).mean()),
        "forget_gate_all_units_over_distractors": float(forget_per_unit.mean()),
        "cell_change_at_my_pets_introduction": float(torch.stack(change_at_intro).mean()),
        "cell_change_over_distractors": float(torch.stack(change_over_distractors).mean()),
    }

    shown = 0  # the first story: draw its words with the chosen units' gates
    real = slice(offsets[shown], ids.shape[1])
    words = stories[shown].tokens
    panels = {name: getattr(record, name)[shown, real][:, units].T.detach().float().numpy() for name in ("f", "i", "c")}
    figure = gate_heatmap(out_dir / "gates.png", words,
                          {"f (forget)": panels["f"], "i (input)": panels["i"], "c (cell)": panels["c"]},
                          units, "Gates of the units that carry my pet's species")
    extra = text_heatmap(words, panels["f"][0], panels["i"][0], units[0], stories[shown].mention)
    extra += write_viewer_page(out_dir, "cliff_view.html", model, ids[shown:shown + 1, real], words,
                               ALL_SPECIES[:settings.stories.species], "lstmkit view: the Cliff LSTM on one story")

    table_rows = [[u, float(r2[u]), float(forget_per_unit[u]), float(record.i[rows, mention, u].mean())]
                  for u in units]
    explanation = (
        f"Over {count} stories at distance {distance}: among the units whose cell state just before "
        f"the probe is explained by my pet's species (R^2 >= 0.5; {metrics['mean_species_r2_all_units']:.2f} "
        f"on average over all units), units {units} hold their cell most (R^2 "
        f"{', '.join(f'{v:.2f}' for v in metrics['species_r2'])}). Their forget gate "
        f"averages {metrics['forget_gate_over_distractors']:.3f} over the distractors; their input "
        f"gate is {metrics['input_gate_at_my_pets_species']:.2f} at my pet's species word against "
        f"{metrics['input_gate_over_distractors']:.2f} over the distractors (all units: forget gate "
        f"{metrics['forget_gate_all_units_over_distractors']:.3f}). Their cell state moves by "
        f"{metrics['cell_change_at_my_pets_introduction']:.3f} per step over my pet's introduction and "
        f"by {metrics['cell_change_over_distractors']:.3f} per step over the distractors.")
    return ExperimentResult(NAME, TITLE, metrics,
                            ["unit", "species R^2", "f over distractors", "i at my pet's species"], table_rows,
                            [figure], explanation, extra,
                            headline=(f"Gates of the species units: f {metrics['forget_gate_over_distractors']:.3f} "
                                      f"over distractors; i {metrics['input_gate_at_my_pets_species']:.2f} at my "
                                      f"pet's species vs {metrics['input_gate_over_distractors']:.2f} over distractors"),
                            seconds=time.perf_counter() - started)


def text_heatmap(words: list[str], forget, input_gate, unit: int, mention: int) -> str:
    """Two lines of the story's words, shaded by one unit's forget and input gates (0..1)."""
    def line(label: str, values, rgb: str) -> str:
        spans = "".join(
            f'<span title="{label} = {float(v):.3f}" style="background: rgba({rgb}, {float(v):.2f});'
            f'{" font-weight: bold;" if k == mention else ""}">{html.escape(w)}</span> '
            for k, (w, v) in enumerate(zip(words, values)))
        return f'<p class="gates"><b>{label}</b><br>{spans}</p>'
    return (f"<p>Unit {unit}, word by word (darker = gate more open; my pet's species in bold):</p>"
            + line("forget gate f", forget, "31, 119, 180") + line("input gate i", input_gate, "214, 39, 40"))
