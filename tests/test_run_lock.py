"""Two processes on one --out: exactly one runs, the other exits 2 with one line naming the holder,
and the folder afterwards holds one complete, loadable run; a run killed by SIGKILL leaves no lock.

Each holder is a child process that stops itself (SIGSTOP) each time it has taken a run folder's
lock, so the second process (this one, through lstmkit.cli.main) meets it there for certain,
however fast or slow the machine; it is then let go (SIGCONT) and must finish its run untouched.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.tasks import forecast, sentiment
from lstmkit.tasks.saved_model import load_model
from lstmkit.training.lock import LOCK_NAME
from tiny_runs import folder_digest, start_cli, train_args, write_data

FLAGS = {"plain": [], "resume": ["--resume"], "overwrite": ["--overwrite"]}
EPOCHS = 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"))


def wait_stopped(child, timeout: float = 120) -> None:
    """Until `child` has stopped itself (state T in /proc), having taken a lock."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] != "T":
        if child.poll() is not None:
            pytest.fail(f"the holder ended before it stopped: {child.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, "timed out waiting for the holder to take its lock"
        time.sleep(0.01)


def refused(argv, capsys, holder_pid: int) -> None:
    """`argv` (in this process) is refused with one line naming the holder, exit 2."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"in use by process {holder_pid}" in err, err


def assert_one_complete_run(out, epochs: int, kind) -> None:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    assert json.loads((out / "last" / "config.json").read_text())["info"]["epoch"] == epochs
    load_model(out, kind)  # the best checkpoint, checked and loaded
    assert not (out / LOCK_NAME).exists()  # released by its holder


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_second_process_is_refused_for_every_combination(data, tmp_path, capsys):
    holders = {}
    for first, flags in FLAGS.items():
        out = tmp_path / first
        if first != "plain":  # --resume and --overwrite need a run there
            assert main(train_args("forecast", data, out, 1)) == 0
        holders[first] = (out, start_cli(train_args("forecast", data, out, EPOCHS) + flags,
                                         stop_holding=True))
    for first, (out, child) in holders.items():
        wait_stopped(child)
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == child.pid
        before = folder_digest(out)
        for second, flags in FLAGS.items():
            refused(train_args("forecast", data, out, EPOCHS) + flags, capsys, child.pid)
        assert folder_digest(out) == before, f"{first}: a refused process changed the folder"
        child.send_signal(signal.SIGCONT)
    for first, (out, child) in holders.items():
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, f"{first}: {err[-2000:]}"
        assert_one_complete_run(out, EPOCHS, forecast.MODEL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_lock_held_through_pretraining_and_ensemble_members(data, tmp_path, capsys):
    out = tmp_path / "ensemble"
    args = train_args("sentiment", data, out, 2) + ["--ensemble", "2", "--pretrain-epochs", "1"]
    child = start_cli(args, stop_holding=True)
    wait_stopped(child)  # holding OUT, before the data is read
    child.send_signal(signal.SIGCONT)
    wait_stopped(child)  # after the pretraining, holding the first member's folder too
    assert (out / "members" / "start" / "config.json").exists()
    refused(args + ["--overwrite"], capsys, child.pid)
    child.send_signal(signal.SIGCONT)
    wait_stopped(child)  # holding the second member's folder
    refused(args + ["--resume"], capsys, child.pid)
    child.send_signal(signal.SIGCONT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-2000:]
    assert load_model(out, sentiment.MODEL).config.ensemble == 2


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_a_killed_run_leaves_no_lock(data, tmp_path, capsys):
    out = tmp_path / "killed"
    child = start_cli(train_args("forecast", data, out, EPOCHS), stop_holding=True)
    wait_stopped(child)
    child.kill()
    child.wait()
    assert (out / LOCK_NAME).exists()  # the file stays; the kernel released the lock itself
    assert main(train_args("forecast", data, out, 1) + ["--overwrite"]) == 0, capsys.readouterr().err
    assert_one_complete_run(out, 1, forecast.MODEL)
