"""kill -9 at any moment, then --resume: the run ends exactly as the uninterrupted run does (every
checkpoint's tensors bit for bit, metrics.jsonl, the reports), for every task, the language model
with its state carried across shortened epochs (--chunks-per-epoch) included.

Each task is killed twice, in two child processes running side by side: once just before a
randomly drawn rename of its atomic writes (a checkpoint folder complete but not in place, the old
one set aside but the new one not yet in, metrics.jsonl written but not renamed) and once at a
random moment after its first checkpoint. The draws are printed on failure; LSTMKIT_KILL_SEED
replays them.
"""
from __future__ import annotations

import os
import random
import time

import pytest

from lstmkit.cli import main
from tiny_runs import TASKS, run_results, start_cli, train_args, write_data

EPOCHS = 4
# Each task's tiny run; sentiment also as an ensemble after language-model pretraining, whose
# members resume one by one from their shared start.
RUNS = {**{task: (task, []) for task in TASKS},
        "sentiment-ensemble": ("sentiment", ["--ensemble", "2", "--pretrain-epochs", "1"])}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"))


def count_replaces(monkeypatch) -> list[int]:
    calls, real = [0], os.replace

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(os, "replace", counting)
    return calls


def kill_after_first_checkpoint(child, out, delay: float) -> None:
    """SIGKILL `child` `delay` seconds after its first metrics.jsonl appears (if it still runs)."""
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    child.kill()


def command(name: str, data, out):
    task, flags = RUNS[name]
    return train_args(task, data, out, EPOCHS) + flags


@pytest.mark.parametrize("name", RUNS)
def test_kill_9_then_resume_ends_as_the_uninterrupted_run(name, data, tmp_path, one_thread,
                                                           monkeypatch, capsys):
    """one_thread: the arithmetic of the child processes, so results can be equal bit for bit."""
    seed = int(os.environ.get("LSTMKIT_KILL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    args = command(name, data, tmp_path / "reference")
    with monkeypatch.context() as patch:
        replaces = count_replaces(patch)
        assert main(args) == 0
    expected = run_results(tmp_path / "reference")
    # The 4th rename comes after the first epoch's `last` checkpoint: from there on, --resume works.
    kill_at = rng.randint(4, replaces[0])
    delay = rng.uniform(0.0, 0.6)
    runs = {"at_rename": tmp_path / "at_rename", "at_time": tmp_path / "at_time"}
    children = {"at_rename": start_cli(command(name, data, runs["at_rename"]), kill_at),
                "at_time": start_cli(command(name, data, runs["at_time"]))}
    kill_after_first_checkpoint(children["at_time"], runs["at_time"], delay)
    draws = f"(LSTMKIT_KILL_SEED={seed}: killed at rename {kill_at} of {replaces[0]}, " \
            f"or {delay:.2f} s after the first checkpoint)"
    for kill, child in children.items():
        _, err = child.communicate(timeout=120)
        assert child.returncode in (0, -9), f"{kill}: {err[-2000:]} {draws}"
        assert main(command(name, data, runs[kill]) + ["--resume"]) == 0, \
            f"{kill}: {capsys.readouterr().err[-2000:]} {draws}"
        got = run_results(runs[kill])
        assert sorted(got) == sorted(expected), f"{kill} {draws}"
        for key in expected:
            assert got[key] == expected[key], f"{kill}: {key} differs {draws}"
    assert children["at_rename"].returncode == -9, draws
