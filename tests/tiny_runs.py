"""Tiny data and training commands for every task, and CLI child processes, for the tests of what a
user must never lose (bad inputs, kill -9 and --resume, two processes on one run folder, fuzzing)."""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import safetensors.torch

TASKS = ("forecast", "lm", "sentiment", "seqmnist")
TIMING_KEYS = {"seconds", "items_per_second", "minutes", "train_seconds"}

# A child process: the CLI with one torch thread (the same arithmetic as a parent that sets one),
# optionally killed by SIGKILL just before its N-th os.replace (the renames that complete every
# atomic write: a checkpoint's new folder, the old one set aside, metrics.jsonl, reports), or
# stopping itself (SIGSTOP) each time it has taken a run folder's lock.
CHILD = """
import os, signal, sys
if os.environ.get("TINY_RUNS_STOP_HOLDING"):
    from lstmkit.training import lock
    real_record = lock._record_holder
    def record(fd):
        real_record(fd)
        os.kill(os.getpid(), signal.SIGSTOP)
    lock._record_holder = record
kill_at = int(os.environ.get("TINY_RUNS_KILL_AT_REPLACE", "0"))
if kill_at:
    real_replace, calls = os.replace, [0]
    def replace(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(*args, **kwargs)
    os.replace = replace
import torch
torch.set_num_threads(1)
from lstmkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def write_data(folder: Path) -> dict[str, Path]:
    """Tiny training data for each task in `folder`: task -> its file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    good, bad = "good great love fine nice".split(), "bad awful hate poor worst".split()
    filler = "the a item it this was and product".split()
    lines = []
    for i in range(96):
        words = [rng.choice(good if i % 2 else bad)] + rng.choices(filler, k=4)
        rng.shuffle(words)
        lines.append(f"__label__{1 + i % 2} {' '.join(words)}")
    (folder / "reviews.txt").write_text("\n".join(lines) + "\n")
    t = np.arange(160)
    series = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)
    (folder / "series.csv").write_text("month,sales,temp\n" + "".join(
        f"m{i},{v:.4f},{np.cos(i / 3):.4f}\n" for i, v in enumerate(series)))
    (folder / "text.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 60)
    images = np.random.default_rng(0)
    np.savez(folder / "digits.npz", x_train=images.integers(0, 255, (160, 8, 8), dtype=np.uint8),
             y_train=images.integers(0, 10, 160), x_test=images.integers(0, 255, (20, 8, 8), dtype=np.uint8),
             y_test=images.integers(0, 10, 20))
    return {"sentiment": folder / "reviews.txt", "forecast": folder / "series.csv",
            "lm": folder / "text.txt", "seqmnist": folder / "digits.npz"}


def train_args(task: str, data: dict[str, Path], out: Path, epochs: int = 2) -> list[str]:
    """`lstmkit train TASK ...` of a run that takes a second or two."""
    common = ["--out", str(out), "--epochs", str(epochs), "--no-progress"]
    if task == "sentiment":
        return ["train", "sentiment", "--train", str(data[task]), "--test", str(data[task]),
                "--hidden-size", "8", "--embedding-dim", "8", "--min-freq", "1", "--no-baseline",
                "--batch-size", "16", "--bag-buckets", "4096", *common]  # a small bag: fitted at once
    if task == "forecast":
        return ["train", "forecast", "--csv", str(data[task]), "--target", "sales", "--features",
                "temp", "--window", "12", "--horizon", "3", "--hidden-size", "8", "--no-plot",
                *common]
    if task == "lm":
        return ["train", "lm", "--text", str(data[task]), "--hidden-size", "16", "--num-layers", "1",
                "--bptt", "16", "--batch-size", "4", "--chunks-per-epoch", "3", *common]
    return ["train", "seqmnist", "--npz", str(data[task]), "--hidden-size", "8", "--valid-size", "40",
            "--batch-size", "32", *common]


def start_cli(args: list[str], kill_at_replace: int = 0, stop_holding: bool = False) -> subprocess.Popen:
    """`lstmkit ARGS` in a child process (see CHILD), its output captured."""
    env = {**os.environ, "TINY_RUNS_KILL_AT_REPLACE": str(kill_at_replace), "OMP_NUM_THREADS": "1",
           "TINY_RUNS_STOP_HOLDING": "1" if stop_holding else ""}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def without_timing(value):
    """JSON data with wall-clock entries dropped, for comparing two runs."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def run_results(out: Path) -> dict:
    """What a finished run left in `out`: every checkpoint's tensors (bytes), metrics.jsonl, the
    task's report files and its settings (recipe.json), without wall-clock entries."""
    results = {}
    for file in sorted(out.rglob("*.safetensors")):
        tensors = safetensors.torch.load_file(str(file))
        results[str(file.relative_to(out))] = {k: v.numpy().tobytes() for k, v in tensors.items()}
    for file in sorted(out.rglob("*.json")) + sorted(out.rglob("*.jsonl")):
        text = file.read_text()
        records = [json.loads(line) for line in text.splitlines() if line.strip()] \
            if file.suffix == ".jsonl" else json.loads(text)
        if file.name == "recipe.json":  # the command's settings: where the run lives and how it
            for key in ("out", "resume", "overwrite"):  # was started are not results
                records.get("training", {}).pop(key, None)
        results[str(file.relative_to(out))] = without_timing(records)
    return results


def folder_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative name -> sha256 of its bytes)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
