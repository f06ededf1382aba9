"""Time: --max-minutes stops training mid-epoch with time left to validate and score, the
expected-time line before the bulk of the training, and status lines with the bar off."""
import json
import time

import pytest
import torch
from torch import nn

from lstmkit import training as train
from lstmkit.training import budget as budget_module
from lstmkit.training import progress as progress_module
from lstmkit.training.budget import Budget, Pace, minutes_text


def slow_spec(log, pause=0.02, batches=60, **overrides):
    torch.manual_seed(0)
    x = torch.randn(batches * 4, 3)  # (N, 3)
    y = x.sum(1)  # (N,)
    model = nn.Linear(3, 1)

    def step(model, batch, state):
        time.sleep(pause)
        inputs, targets = batch
        return train.StepOutput(nn.functional.mse_loss(model(inputs).squeeze(-1), targets),
                                size=len(targets))

    return train.TrainSpec(task="toy", model=model, model_config={}, step=step,
                           train_batches=lambda epoch: [(x[i:i + 4], y[i:i + 4])
                                                        for i in range(0, len(x), 4)],
                           valid_batches=[(x[:8], y[:8])], log=log.append, **overrides)


@pytest.fixture
def no_margin(monkeypatch):
    monkeypatch.setattr(budget_module, "MARGIN_SECONDS", 0.0)


def test_budget_stops_mid_epoch_then_validates_and_checkpoints(tmp_path, no_margin):
    log = []
    config = train.TrainConfig(out=tmp_path / "run", epochs=5, progress=False, device="cpu",
                               max_minutes=0.6 / 60)  # 0.6 s for 5 epochs of 60 batches of 20 ms
    result = train.fit(slow_spec(log), config)
    assert result.stopped_by_budget and result.epochs_run == 1
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 1 and history[0]["stopped_by_budget"] is True
    assert 5 <= history[0]["step"] < 60  # part of the first epoch
    assert "valid_loss" in history[0] and (tmp_path / "run" / "best" / "config.json").is_file()
    assert any(line.startswith("time budget: epoch 1 stops after") for line in log)


def test_the_final_scoring_is_reserved_from_the_budget(no_margin):
    """A phase that must leave time to score many items stops earlier than one that need not."""
    steps = []
    for final_items in (0, 4000):
        log = []
        spec = slow_spec(log, final_items=final_items)
        result = train.fit(spec, train.TrainConfig(epochs=1, progress=False, device="cpu",
                                                   max_minutes=0.8 / 60))
        steps.append(result.history[0]["step"])
    assert steps[1] < steps[0]


def test_expected_time_line_is_printed_once_before_most_batches(monkeypatch):
    monkeypatch.setattr(budget_module.Timekeeper, "MEASURE_BATCHES", 5)
    log = []
    train.fit(slow_spec(log, pause=0.001), train.TrainConfig(epochs=3, progress=False, device="cpu"))
    expected = [line for line in log if line.startswith("expected time:")]
    assert len(expected) == 1
    assert log.index(expected[0]) < next(i for i, line in enumerate(log) if line.startswith("epoch 1/3"))
    assert "3 epoch(s)" in expected[0]


def test_budget_shares_and_the_estimate_text():
    budget = Budget.start(10)
    half = budget.share(2, reserve=60)
    assert half.left() == pytest.approx((600 - 60) / 2, abs=1)
    assert Budget.start(None).share(3).left() == float("inf")
    assert minutes_text(30) == "30 s" and minutes_text(600) == "10 min"
    assert minutes_text(7500) == "2 h 05 min"
    pace = Pace()
    pace.add_training(10.0, 100)  # 0.1 s an item
    line = pace.expected_line(2, 1000, eval_items=300, final_items=0, budget=Budget.start(1))
    # 2 epochs x (100 s training + 300 items scored at a third of the cost) = 220 s > 60 s
    assert "about 4 min" in line and "stops it after about" in line


def test_status_lines_with_the_bar_off(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "STATUS_SECONDS", 0.0)
    items = list(progress_module.progress(range(3), False, "epoch 1/2", status=lambda: "loss 0.5"))
    assert items == [0, 1, 2]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("epoch 1/2: 1/3 batches") and lines[0].endswith("loss 0.5")
    assert len(lines) == 3
