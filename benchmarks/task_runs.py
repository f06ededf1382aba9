"""The harness the task benchmarks share (lm_shakespeare, lm_ptb, forecast, seqmnist, sentiment).

`measure` runs the real CLI (`python -m lstmkit.cli ...`) in a subprocess with a given number of
intra-op threads and records its exit status, wall and CPU time and the machine's load average
(the machines are shared: under load, wall time says little). `run_measured` is the record the
language-model, forecasting and MNIST benchmarks keep (minutes, rounded); sentiment.py builds its
own record from `measure`. `task_parser` and `parse_task_args` are the command line those
benchmarks start from; `write_markdown` writes their OUT.md table. Not a benchmark itself.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from lstmkit.paths import data_root


def measure(argv: list[str], log_path: Path, threads: int, *, unbuffered: bool = True) -> dict:
    """Run `python -m lstmkit.cli ARGV` with THREADS intra-op threads, output to LOG_PATH.

    Returns the exit status, wall and CPU seconds (unrounded) and the load average before and after.
    UNBUFFERED sets PYTHONUNBUFFERED, so the log fills while the run goes.
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    load_before, usage_before = os.getloadavg(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        status = subprocess.run([sys.executable, "-m", "lstmkit.cli", *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    return {"status": status, "wall_seconds": wall, "cpu_seconds": cpu,
            "load_before": load_before, "load_after": os.getloadavg()}


def processor() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    import platform
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_measured(argv: list[str], log_path: Path, threads: int) -> dict:
    """Run `python -m lstmkit.cli ARGV` with THREADS intra-op threads; wall/CPU time and load average."""
    m = measure(argv, log_path, threads)
    return {"status": m["status"], "wall_minutes": round(m["wall_seconds"] / 60, 2),
            "cpu_minutes": round(m["cpu_seconds"] / 60, 2),
            "load_before": [round(x, 1) for x in m["load_before"]],
            "load_after": [round(x, 1) for x in m["load_after"]], "threads": threads,
            "command": "lstmkit " + " ".join(argv), "log": str(log_path)}


def run_notes(result: dict) -> list[str]:
    """The lines of an OUT.md that say how a `run_measured` run went: time, load, command."""
    return [f"Wall {result['wall_minutes']} min, CPU {result['cpu_minutes']} min, {result['threads']} "
            f"thread(s), load average {result['load_before']} before, {result['load_after']} after.",
            f"Command: `{result['command']}`"]


def write_markdown(path: Path, title: str, header: list[str], rows: list[list], notes: list[str]) -> None:
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    path.write_text("\n".join(lines + [""] + notes) + "\n")


def task_parser(description: str, name: str) -> argparse.ArgumentParser:
    """The options every task benchmark has: --threads, --out (runs/benchmarks/NAME), --report-dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks") / name,
                        help="work folder: run folders (checkpoints) and logs; runs/ is not versioned")
    parser.add_argument("--report-dir", type=Path, default=Path("benchmarks/results"),
                        help="where NAME.json and NAME.md go")
    return parser


def parse_task_args(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, list[str], Path]:
    """Parse the command line: (options, extra flags for the CLI without "--", the shared data folder).

    Exits with status 2 when the shared data is not found; creates --out and --report-dir.
    """
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    root = data_root()
    if root is None:
        print("shared data not found: set LSTMKIT_DATA", file=sys.stderr)
        raise SystemExit(2)
    args.out.mkdir(parents=True, exist_ok=True)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    return args, extra, root
