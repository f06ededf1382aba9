"""The one training loop: learning, early stopping, best/last checkpoints, resume, carried state."""
import json

import pytest
import torch
from torch import nn

from lstmkit import training as train
from lstmkit.errors import UsageError
from lstmkit.training.checkpoint import load_checkpoint
from lstmkit.training.schedule import factor_of, make_schedule, set_step


def make_regression(seed=0, n=64, dim=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)  # (N, D)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3  # (N,)
    return x, y


def make_spec(model, x, y, batch_size=16, seed=0, valid=True, **overrides):
    def train_batches(epoch):
        order = torch.randperm(len(x), generator=train.epoch_generator(seed, epoch))
        return [(x[idx], y[idx]) for idx in order.split(batch_size)]

    def step(model, batch, state):
        inputs, targets = batch
        pred = model(inputs).squeeze(-1)  # (B,)
        loss = nn.functional.mse_loss(pred, targets)
        return train.StepOutput(loss, metrics={"mae": (pred - targets).abs().mean()},
                                size=len(targets))

    spec = dict(task="toy", model=model, model_config={"dim": 3}, train_batches=train_batches,
                step=step, valid_batches=[(x[:32], y[:32])] if valid else None)
    spec.update(overrides)
    return train.TrainSpec(**spec)


def build_model(seed=0):
    torch.manual_seed(seed)
    # Dropout makes the RNG state part of what resume must restore.
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 1))


def config(tmp_path, **kw):
    base = dict(out=tmp_path / "run", epochs=4, lr=0.02, progress=False, device="cpu")
    base.update(kw)
    return train.TrainConfig(**base)


def test_fit_learns_and_writes_best_last_and_metrics(tmp_path):
    x, y = make_regression()
    result = train.fit(make_spec(build_model(), x, y), config(tmp_path, epochs=6))
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    assert {"valid_loss", "valid_mae", "lr", "items_per_second"} <= set(history[0])
    best = load_checkpoint(tmp_path / "run" / "best", task="toy")
    assert best.info["epoch"] == result.best_epoch
    assert best.info["metrics"]["loss"] == pytest.approx(min(r["valid_loss"] for r in history))
    # The returned model holds the best weights.
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, best.state_dict[k])
    last = load_checkpoint(tmp_path / "run" / "last", task="toy", trainer=True)
    assert last.trainer_json["run"]["epochs_done"] == 6


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    x, y = make_regression()
    straight = train.fit(make_spec(build_model(), x, y),
                         config(tmp_path / "a", epochs=4, lr_schedule="cosine", warmup_steps=3))

    def interrupt_at_epoch_3(epoch):  # as if killed after the second epoch's checkpoint
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(make_spec(build_model(), x, y, on_epoch_start=interrupt_at_epoch_3),
                  config(tmp_path / "b", epochs=4, lr_schedule="cosine", warmup_steps=3))
    # Resume with a *different* fresh model init: everything must come from the checkpoint.
    resumed = train.fit(make_spec(build_model(seed=5), x, y),
                        config(tmp_path / "b", epochs=4, lr_schedule="cosine", warmup_steps=3,
                               resume=True))
    a = load_checkpoint(tmp_path / "a" / "run" / "last", task="toy").state_dict
    b = load_checkpoint(tmp_path / "b" / "run" / "last", task="toy").state_dict
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]


def test_early_stopping_stops_after_patience(tmp_path):
    x, y = make_regression()
    calls = []

    def evaluate(model, device):  # a validation metric that never improves after epoch 1
        calls.append(1)
        return {"loss": 1.0 + len(calls)}

    result = train.fit(make_spec(build_model(), x, y, evaluate=evaluate),
                       config(tmp_path, epochs=10, patience=2))
    assert result.epochs_run == 3 and result.stopped_early and result.best_epoch == 1


def test_metric_higher_is_better_and_no_checkpoint_without_out(tmp_path):
    x, y = make_regression()
    scores = iter([0.5, 0.9, 0.7])
    result = train.fit(make_spec(build_model(), x, y, evaluate=lambda m, d: {"acc": next(scores)},
                                 monitor="acc", lower_is_better=False),
                       config(tmp_path, out=None, epochs=3))
    assert result.best_epoch == 2 and result.best_metrics == {"acc": 0.9}
    assert not (tmp_path / "run").exists()


def test_state_is_carried_detached_and_reset_each_epoch(tmp_path):
    x, y = make_regression()
    seen, starts = [], []

    def step(model, batch, state):
        seen.append(state)
        inputs, targets = batch
        pred = model(inputs).squeeze(-1)
        carried = pred.sum().reshape(1)  # has a graph: the loop must detach it
        return train.StepOutput(nn.functional.mse_loss(pred, targets), state=(carried,))

    train.fit(make_spec(build_model(), x, y, step=step, valid=False, on_epoch_start=starts.append),
              config(tmp_path, out=None, epochs=2))
    assert starts == [0, 1]
    per_epoch = len(seen) // 2
    assert seen[0] is None and seen[per_epoch] is None
    assert all(isinstance(s, tuple) and not s[0].requires_grad for s in seen[1:per_epoch])


def test_refuses_to_overwrite_or_resume_nothing(tmp_path):
    x, y = make_regression()
    with pytest.raises(UsageError, match="no checkpoint"):
        train.fit(make_spec(build_model(), x, y), config(tmp_path, epochs=1, resume=True))
    train.fit(make_spec(build_model(), x, y), config(tmp_path, epochs=1))
    with pytest.raises(UsageError, match="--overwrite"):
        train.fit(make_spec(build_model(), x, y), config(tmp_path, epochs=1))
    train.fit(make_spec(build_model(), x, y), config(tmp_path, epochs=1, overwrite=True))
    other = make_spec(build_model(), x, y, model_config={"dim": 4})
    with pytest.raises(UsageError, match="other model settings"):
        train.fit(other, config(tmp_path, epochs=2, resume=True))


def test_diverging_loss_is_reported(tmp_path):
    x, y = make_regression()
    y = y * float("nan")
    with pytest.raises(UsageError, match="loss became nan"):
        train.fit(make_spec(build_model(), x, y), config(tmp_path, out=None, epochs=1))


def test_cli_flags_are_shared_and_validated(capsys):
    import argparse
    from dataclasses import dataclass

    from lstmkit.recipe import add_flags, from_args, section

    @dataclass
    class Recipe:
        training: train.TrainConfig = section(lambda: train.TrainConfig(epochs=3, lr=0.5))

    parser = argparse.ArgumentParser()
    add_flags(parser, Recipe)
    args = parser.parse_args(["--out", "o", "--batch-size", "8", "--patience", "2", "--no-progress"])
    cfg = from_args(Recipe, args).training
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.patience, cfg.progress) == (3, 0.5, 8, 2, False)
    with pytest.raises(SystemExit):  # refused where it is parsed, before any data is read
        parser.parse_args(["--out", "o", "--epochs", "0"])
    assert "--epochs must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--epochs"):  # the same check for settings built in code
        train.fit(make_spec(build_model(), *make_regression()), train.TrainConfig(epochs=0))


def test_lr_schedules():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    cos = make_schedule(opt, train.TrainConfig(lr=1.0, epochs=4, lr_schedule="cosine", warmup_steps=4))
    assert set_step(cos, 0, 0) == pytest.approx(0.25) and set_step(cos, 10, 0) == pytest.approx(1.0)
    assert set_step(cos, 10, 2) == pytest.approx(0.5) and opt.param_groups[0]["lr"] == pytest.approx(0.5)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    plateau = make_schedule(opt, train.TrainConfig(lr=1.0, lr_schedule="plateau", lr_step=1))
    for value in [1.0, 0.5, 0.6]:
        factor_of(plateau).end_of_epoch(value, lower_is_better=True)
    assert set_step(plateau, 10, 3) == pytest.approx(0.5)
