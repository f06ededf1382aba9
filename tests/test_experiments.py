"""The demo's experiments: story generator, task data, measurements, report writing, interruption."""
import random

import pytest
import torch
import torch.nn.functional as F

from lstmkit.errors import UsageError
from lstmkit.experiments import adding_copy, cliff, gates, gradients
from lstmkit.experiments.common import RecurrentModel, format_table
from lstmkit.data.vocabulary import PAD
from lstmkit.experiments.stories import (ALL_NAMES, ALL_SPECIES, INTRO_OPENINGS, StoryConfig,
                                         make_story, story_vocabulary)


@pytest.mark.parametrize("distance", [0, 1, 2, 3, 4, 7, 50, 203])
def test_story_puts_the_probe_exactly_distance_tokens_after_the_pets(distance):
    rng = random.Random(distance)
    config = StoryConfig(species=6, names=10, pets_per_story=3)
    for _ in range(20):
        story = make_story(distance, config, rng)
        last_intro_end = max(i for i, t in enumerate(story.tokens[:story.probe_start]) if t == "named") + 2
        assert story.probe_start - (last_intro_end + 1) == distance
        between = story.tokens[last_intro_end + 1:story.probe_start]
        assert not set(between) & (set(ALL_SPECIES) | set(ALL_NAMES) | {"pet", "named"})


def test_story_answer_is_the_species_introduced_as_mine():
    rng = random.Random(0)
    config = StoryConfig(species=6, names=10, pets_per_story=3)
    openings = {" ".join(o) for o in INTRO_OPENINGS}
    for _ in range(50):
        story = make_story(12, config, rng)
        asked_name = story.tokens[story.probe_start + 2]
        named_at = story.tokens.index(asked_name)  # first mention: its introduction
        assert story.tokens[named_at - 2] == ALL_SPECIES[story.answer] == story.tokens[story.mention]
        sentence_start = max(i for i in range(named_at) if story.tokens[i] == ".") + 1 \
            if "." in story.tokens[:named_at] else 0
        assert " ".join(story.tokens[sentence_start:story.mention - 1]) in openings
        species_in_story = [t for t in story.tokens if t in ALL_SPECIES]
        assert len(species_in_story) == len(set(species_in_story)) == 3


def test_story_generation_is_repeatable_and_encodable():
    first = [make_story(30, StoryConfig(), random.Random(5)).tokens for _ in range(3)]
    second = [make_story(30, StoryConfig(), random.Random(5)).tokens for _ in range(3)]
    assert first == second
    vocab = story_vocabulary()
    assert vocab.encode(first[0])[0] != 0  # 0 is reserved for padding
    assert vocab.tokens[0] == PAD and vocab.pad_index == 0


@pytest.mark.parametrize("config", [StoryConfig(species=0), StoryConfig(names=1),
                                    StoryConfig(pets_per_story=7, species=6)])
def test_impossible_story_settings_are_usage_errors(config):
    with pytest.raises(UsageError):
        config.validate()


def test_cliff_batch_is_left_padded_so_every_probe_ends_the_row():
    ids, answers = cliff.make_batch(9, 16, StoryConfig(), story_vocabulary(), random.Random(1))
    vocab = story_vocabulary()
    assert ids.shape[0] == answers.shape[0] == 16
    assert (ids[:, -1] == vocab.index["pet"]).all()
    assert (ids[:, 0] == 0).any()  # stories differ in length, so some rows are padded


def test_adding_batch_marks_one_step_in_each_half_and_baseline_is_one_sixth():
    inputs, targets = adding_copy.adding_batch(40, 20000, torch.Generator().manual_seed(0))
    values, markers = inputs[..., 0], inputs[..., 1]
    assert (markers[:, :20].sum(1) == 1).all() and (markers[:, 20:].sum(1) == 1).all()
    assert torch.allclose((values * markers).sum(1), targets)
    # Always answering 1 costs the analytical baseline 1/6.
    assert abs(F.mse_loss(torch.ones_like(targets), targets).item() - adding_copy.ADDING_BASELINE) < 0.005


def test_copy_baseline_is_the_cost_of_blanks_then_a_uniform_guess():
    blanks = 15
    inputs, targets = adding_copy.copy_batch(blanks, 64, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (64, blanks + 20)
    assert (inputs[:, blanks + 9] == adding_copy.DELIMITER).all()
    assert torch.equal(inputs[:, :10], targets[:, -10:])
    # The memoryless strategy: certain blank until the delimiter, then uniform over the 8 symbols.
    logits = torch.full((64, blanks + 20, 9), -1e9)
    logits[:, :blanks + 10, 0] = 0.0
    logits[:, blanks + 10:, 1:] = 0.0
    loss = F.cross_entropy(logits.reshape(-1, 9), targets.reshape(-1)).item()
    assert loss == pytest.approx(adding_copy.copy_baseline(blanks), rel=1e-5)


def test_gradient_vanishes_through_a_contracting_rnn_but_not_an_lstm_holding_its_cell():
    torch.manual_seed(0)
    ids, answers = cliff.make_batch(30, 8, StoryConfig(), story_vocabulary(), random.Random(0))
    rnn = RecurrentModel("rnn", 8, 16, 6, vocab_size=len(story_vocabulary()))
    lstm = RecurrentModel("lstm", 8, 16, 6, vocab_size=len(story_vocabulary()))
    with torch.no_grad():
        rnn.recurrent.weight_hh_l0.mul_(0.3)           # spectral radius well below 1
        lstm.recurrent.bias_hh_l0[16:32].fill_(8.0)     # forget gate ~ 1: the cell holds
    rnn_curve = gradients.gradient_by_distance(rnn, ids, answers, 30)
    lstm_curve = gradients.gradient_by_distance(lstm, ids, answers, 30)
    assert rnn_curve[-1] / rnn_curve[0] < 1e-6
    assert lstm_curve[-1] / lstm_curve[0] > 1e-2


def test_species_r2_finds_a_unit_that_encodes_the_label():
    labels = torch.arange(200) % 4
    values = torch.randn(200, 3)
    values[:, 1] = labels.float() + 0.01 * torch.randn(200)
    r2 = gates.species_r2(values, labels)
    assert r2[1] > 0.99 and r2[0] < 0.1 and r2[2] < 0.1


def test_training_is_repeatable_for_a_seed():
    settings = cliff.CliffSettings.quick()
    settings.steps = 5
    first = cliff.train("lstm", settings, seed=3, show_progress=False)
    second = cliff.train("lstm", settings, seed=3, show_progress=False)
    other = cliff.train("lstm", settings, seed=4, show_progress=False)
    for a, b, c in zip(first.parameters(), second.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters()))


def test_distances_are_drawn_log_uniformly_up_to_the_reach():
    rng = random.Random(0)
    drawn = [cliff.sample_distance(200, rng) for _ in range(5000)]
    assert min(drawn) == 0 and max(drawn) == 200
    short, middle = sum(d < 14 for d in drawn), sum(14 <= d < 201 for d in drawn)
    assert 0.35 < short / len(drawn) < 0.65 and middle > 0  # half below sqrt(202) - 1, half above
    assert all(cliff.sample_distance(0, rng) == 0 for _ in range(20))


def test_curriculum_starts_short_and_reaches_the_longest_distance():
    settings = cliff.CliffSettings(distances=[5, 200], steps=1000)
    reaches = [cliff.curriculum_reach(step, settings) for step in range(1000)]
    assert reaches[0] == settings.warmup_distance
    assert reaches == sorted(reaches) and reaches[-1] == 200


def test_terminal_table_is_aligned():
    text = format_table(["T", "MSE"], [[200, 0.004], [50, 0.16667]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert "0.004" in text and "0.167" in text


def test_a_small_lstm_really_learns_cliff_and_adding():
    """The training loops learn: tiny settings, a few seconds, far above chance and baseline."""
    settings = cliff.CliffSettings(distances=[3], embedding_size=16, hidden_size=32, steps=400,
                                   batch_size=32, lr=1e-2, eval_stories=128,
                                   stories=StoryConfig(pets_per_story=1))
    model = cliff.train("lstm", settings, seed=0, show_progress=False)
    assert cliff.evaluate(model, settings, seed=0)[3] >= 0.75  # chance is 1/6
    adding = adding_copy.TaskSettings([20], hidden_size=16, steps=800, lr=1e-2, batch_size=32,
                                      eval_sequences=256)
    model = adding_copy.train("adding", "lstm", adding, seed=0, show_progress=False)
    assert adding_copy.evaluate("adding", model, adding, seed=0)[20]["loss"] < 0.02  # baseline 0.167
