"""GPU speed of the Triton engine against cuDNN (torch.nn.LSTM) and the reference engine.

    python benchmarks/bench_gpu.py [--name h200] [--out-dir benchmarks/results] [--cpu-dry-run]

Every time is ``triton.testing.do_bench``'s median (CUDA events, after warm-up), measured in this
one process on the same inputs, one contender after the other; read the ratios. TF32 is off, so
float32 is float32 for cuDNN and Triton alike.
  table       T=1024, B in {1, 16, 64}, H in {128, 256, 768} (input size H), bfloat16 and float32:
              forward (no grad) and forward+backward of one LSTM layer: cuDNN against the input
              projection (one matrix product) + the triton engine's recurrence, as the layer runs it
  layer_norm  the layer-norm LSTM's recurrence, T=1024, B=16: the reference (bptt) engine against triton
  tilings     alternative tilings (lstmkit.engines.triton.plan) at three sizes, forward, beside the
              default: what the next change of plan.choose should be based on
Kernels are compiled first, in parallel processes (Triton's disk cache then serves this process).
Writes OUT_DIR/gpu_NAME.json and .md with the GPU, driver, CUDA, torch and triton versions, after
each section; a row that would start after --budget seconds is left out and said so.
--cpu-dry-run runs every part at tiny sizes on the CPU (Triton's interpreter; needs
TRITON_INTERPRET=1) to check the script itself, writing to a temporary folder.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from lstmkit.engines import bptt
from lstmkit.engines import triton as engine
from lstmkit.engines.contract import LSTMState, LSTMWeights
from lstmkit.engines.triton.plan import Tiling, choose, use_tiling

FULL = {"steps": 1024, "batches": (1, 16, 64), "hiddens": (128, 256, 768), "dtypes": ("bfloat16", "float32"),
        "norm": [("float32", 16, 256), ("bfloat16", 16, 256), ("float32", 16, 768)],
        "tilings": [("bfloat16", 16, 768), ("bfloat16", 16, 256), ("float32", 16, 256)]}
DRY = {"steps": 4, "batches": (1, 3), "hiddens": (16,), "dtypes": ("bfloat16", "float32"),
       "norm": [("float32", 3, 16)], "tilings": [("float32", 3, 16)]}


def alternatives(dtype: str, batch: int, hidden: int, gpu: bool) -> dict[str, Tiling]:
    """The default tiling and a few others for one size."""
    base = choose(batch, hidden, hidden, 4, getattr(torch, dtype), 132 if gpu else None)
    if not gpu:
        return {"default": base, "two_tiles": Tiling(base.block_b, max(1, base.block_h // 2), base.block_k, 1)}
    choices = {"default": base,
               "one_program": Tiling(16, 32, 32, 1, num_warps=8),
               "block_h_32": Tiling(16, 32, 32, -(-hidden // 32), num_warps=8),
               "4_warps": replace(base, num_warps=4)}
    if dtype == "float32":
        choices["streamed"] = replace(base, resident=False, resident_back=False)
    return choices


class Layer:
    """One LSTM layer's tensors on the device: cuDNN's module and the same weights for triton."""

    def __init__(self, dtype: str, batch: int, hidden: int, steps: int, device: str, layer_norm=False):
        torch.manual_seed(0)
        self.dtype = getattr(torch, dtype)
        self.cudnn = torch.nn.LSTM(hidden, hidden).to(device=device, dtype=self.dtype)
        self.x = torch.randn(steps, batch, hidden, device=device, dtype=self.dtype)   # (T, B, I)
        self.dy = torch.randn(steps, batch, hidden, device=device, dtype=self.dtype)
        zeros = torch.zeros(batch, hidden, device=device, dtype=self.dtype)
        self.state = LSTMState(zeros, zeros)
        p = dict(self.cudnn.named_parameters())
        self.w_ih, self.bias = p["weight_ih_l0"], p["bias_ih_l0"] + p["bias_hh_l0"]
        norm = {}
        if layer_norm:   # gains near 1, a shift: what a trained layer-norm LSTM holds
            gains = lambda n: (1 + 0.1 * torch.randn(n, device=device)).to(self.dtype).requires_grad_()  # noqa: E731
            norm = {"ln_hh": gains(4 * hidden), "ln_c_w": gains(hidden),
                    "ln_c_b": (0.1 * torch.randn(hidden, device=device)).to(self.dtype).requires_grad_()}
        self.weights = LSTMWeights(p["weight_hh_l0"], **norm)

    def xg(self):
        return torch.addmm(self.bias, self.x.flatten(0, 1), self.w_ih.t()).view(*self.x.shape[:2], -1)

    def triton(self):
        return engine.lstm(self.xg(), self.state, self.weights).y

    def reference(self):
        return bptt.lstm(self.xg(), self.state, self.weights).y

    def cudnn_forward(self):
        return self.cudnn(self.x)[0]

    def timed(self, forward, backward: bool):
        """A function running ``forward`` without autograd, or forward and backward with it."""
        if not backward:
            return lambda: _no_grad(forward)
        self.x.requires_grad_(True)
        return lambda: forward().backward(self.dy)


def _no_grad(fn):
    with torch.no_grad():
        return fn()


def timer(gpu: bool, slow: bool = False):
    """ms per call: do_bench's median on a GPU (short for slow contenders), else a CPU median of 3."""
    if gpu:
        import triton.testing
        return lambda fn: triton.testing.do_bench(fn, warmup=1 if slow else 25, rep=1 if slow else 100,
                                                  return_mode="median")

    def cpu(fn):
        fn()
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        return sorted(samples)[1]
    return cpu


def compile_job(job: tuple) -> str:
    """Run one configuration once at two steps (T is not a compile-time constant): the kernels it
    needs land in Triton's disk cache. Runs in a worker process."""
    dtype, batch, hidden, tiling, layer_norm, device = job
    torch.backends.cuda.matmul.allow_tf32 = False
    layer = Layer(dtype, batch, hidden, 2, device, layer_norm)
    with use_tiling(Tiling(**tiling)):
        for backward in (False, True):
            layer.timed(layer.triton, backward)()
    return f"{dtype} B={batch} H={hidden} {'layer_norm ' if layer_norm else ''}{tiling}"


def compile_all(jobs: list[tuple], workers: int) -> float:
    start = time.time()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        for done in pool.map(compile_job, jobs):
            print(f"  compiled {done}", flush=True)
    return time.time() - start


class OutOfTime(Exception):
    """The budget is spent: the remaining rows are left out."""


def check_budget(deadline: float, what: str) -> None:
    if time.time() > deadline:
        print(f"out of time: {what} and what follows it left out", flush=True)
        raise OutOfTime(what)


def compare(row: dict, layer: Layer, other: str, other_fn, measure_other, measure_triton) -> None:
    """Forward and forward+backward of ``other`` and triton into ``row``; a contender that fails is
    recorded as an error, and the rest still runs."""
    for part, backward in (("forward", False), ("forward_backward", True)):
        for who, fn, measure in ((other, other_fn, measure_other), ("triton", layer.triton, measure_triton)):
            try:
                row[f"{part}_{who}_ms"] = measure(layer.timed(fn, backward))
            except Exception as error:   # e.g. a dtype cuDNN lacks: a result, not the end of the run
                row.setdefault("errors", []).append(f"{part} {who}: {type(error).__name__}: {str(error)[:200]}")
        if f"{part}_{other}_ms" in row and f"{part}_triton_ms" in row:
            row[f"{part}_speedup"] = row[f"{part}_{other}_ms"] / row[f"{part}_triton_ms"]
    print(json.dumps(row), flush=True)


def table(sizes: dict, device: str, gpu: bool, deadline: float, rows: list) -> None:
    measure = timer(gpu)
    for dtype in sizes["dtypes"]:
        for hidden in sizes["hiddens"]:
            for batch in sizes["batches"]:
                check_budget(deadline, f"table {dtype} H={hidden} B={batch}")
                layer = Layer(dtype, batch, hidden, sizes["steps"], device)
                row = {"dtype": dtype, "batch": batch, "hidden": hidden, "steps": sizes["steps"]}
                try:
                    with torch.no_grad():
                        row["max_difference_to_cudnn"] = \
                            (layer.triton().float() - layer.cudnn_forward().float()).abs().max().item()
                except Exception as error:
                    row["errors"] = [f"forward: {type(error).__name__}: {str(error)[:200]}"]
                compare(row, layer, "cudnn", layer.cudnn_forward, measure, measure)
                if "forward_triton_ms" in row:
                    row["triton_us_per_step"] = 1e3 * row["forward_triton_ms"] / sizes["steps"]
                rows.append(row)


def layer_norm_rows(sizes: dict, device: str, gpu: bool, deadline: float, rows: list) -> None:
    for dtype, batch, hidden in sizes["norm"]:
        check_budget(deadline, f"layer norm {dtype} H={hidden} B={batch}")
        layer = Layer(dtype, batch, hidden, sizes["steps"], device, layer_norm=True)
        row = {"dtype": dtype, "batch": batch, "hidden": hidden, "steps": sizes["steps"]}
        compare(row, layer, "reference", layer.reference, timer(gpu, slow=True), timer(gpu))
        rows.append(row)


def tiling_rows(sizes: dict, device: str, gpu: bool, deadline: float, rows: list) -> None:
    measure = timer(gpu)
    for dtype, batch, hidden in sizes["tilings"]:
        layer = Layer(dtype, batch, hidden, sizes["steps"], device)
        for name, tiling in alternatives(dtype, batch, hidden, gpu).items():
            check_budget(deadline, f"tiling {name} {dtype} H={hidden} B={batch}")
            row = {"dtype": dtype, "batch": batch, "hidden": hidden, "tiling": name, **asdict(tiling)}
            try:
                with use_tiling(tiling):
                    row["forward_triton_ms"] = measure(layer.timed(layer.triton, False))
            except Exception as error:   # a tiling that does not compile or fit is a result too
                row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
            print(json.dumps(row), flush=True)
            rows.append(row)


def versions(gpu: bool) -> dict:
    import triton
    info = {"torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if gpu else None,
            "gpu": torch.cuda.get_device_name() if gpu else f"none (CPU dry run: {platform.processor()})"}
    try:
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    return info


def _keys(other: str) -> list[str]:
    """A row's times and speedups in table order, forward then forward+backward."""
    return [f"{part}_{key}" for part in ("forward", "forward_backward") for key in (f"{other}_ms", "triton_ms", "speedup")]


def _cells(row: dict, keys: list[str], digits: int = 2) -> str:
    return " | ".join(f"{row[k]:.{digits}f}" if k in row else "—" for k in keys)


def markdown(results: dict) -> str:
    v = results["versions"]
    lines = [f"# Triton engine vs cuDNN: {v['gpu']}", "",
             f"driver {v['driver']}, CUDA {v['cuda']}, cuDNN {v['cudnn']}, torch {v['torch']}, triton {v['triton']}; "
             f"medians of triton.testing.do_bench, TF32 off; speedup = other / triton (> 1: triton faster).", "",
             "| dtype | B | H | fwd cuDNN ms | fwd triton ms | speedup | fwd+bwd cuDNN ms | fwd+bwd triton ms | speedup "
             "| triton µs/step |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["table"]:
        lines.append(f"| {r['dtype']} | {r['batch']} | {r['hidden']} | {_cells(r, _keys('cudnn'))} | "
                     f"{_cells(r, ['triton_us_per_step'])} |")
    lines += ["", "Layer-norm LSTM (recurrence only): the reference engine against triton", "",
              "| dtype | B | H | fwd reference ms | fwd triton ms | speedup | fwd+bwd reference ms | fwd+bwd triton ms "
              "| speedup |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results["layer_norm"]:
        lines.append(f"| {r['dtype']} | {r['batch']} | {r['hidden']} | {_cells(r, _keys('reference'), 1)} |")
    lines += ["", "Tilings (forward ms)", "", "| dtype | B | H | tiling | programs | block_h | warps | ms |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results["tilings"]:
        ms = f"{r['forward_triton_ms']:.2f}" if "forward_triton_ms" in r else r["error"][:80]
        lines.append(f"| {r['dtype']} | {r['batch']} | {r['hidden']} | {r['tiling']} | {r['programs']} | "
                     f"{r['block_h']} | {r['num_warps']} | {ms} |")
    errors = [f"- {r['dtype']} B={r['batch']} H={r['hidden']}: {e}" for section in ("table", "layer_norm")
              for r in results[section] for e in r.get("errors", [])]
    if errors:
        lines += ["", "Errors:", ""] + errors
    if results.get("left_out"):
        lines += ["", f"Left out: {results['left_out']}."]
    return "\n".join(lines) + "\n"


def write(results: dict, out_dir: Path, name: str) -> None:
    (out_dir / f"gpu_{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / f"gpu_{name}.md").write_text(markdown(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=None, help="results file stem: gpu_NAME (default: from the GPU's name)")
    parser.add_argument("--out-dir", default=str(Path(__file__).with_name("results")))
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--budget", type=float, default=270.0, help="seconds; later rows are left out")
    args = parser.parse_args()
    gpu = not args.cpu_dry_run
    if gpu and not torch.cuda.is_available():
        print("no CUDA GPU here: use --cpu-dry-run to check this script on the CPU", file=sys.stderr)
        return 2
    if not gpu and os.environ.get("TRITON_INTERPRET") != "1":
        print("--cpu-dry-run runs Triton's interpreter: set TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    deadline = time.time() + args.budget
    sizes, device = (FULL, "cuda") if gpu else (DRY, "cpu")
    out_dir = Path(args.out_dir) if gpu else Path(tempfile.mkdtemp(prefix="bench_gpu_dry_"))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    info = versions(gpu)
    name = args.name or ("cpu_dry_run" if not gpu else info["gpu"].split()[-1].lower())

    jobs = [(dt, b, h, asdict(choose(b, h, h, 4, getattr(torch, dt), 132 if gpu else None)), False, device)
            for dt in sizes["dtypes"] for h in sizes["hiddens"] for b in sizes["batches"]]
    jobs += [(dt, b, h, asdict(choose(b, h, h, 4, getattr(torch, dt), 132 if gpu else None)), True, device)
             for dt, b, h in sizes["norm"]]
    jobs += [(dt, b, h, asdict(t), False, device) for dt, b, h in sizes["tilings"]
             for t in alternatives(dt, b, h, gpu).values()]
    unique = list(dict.fromkeys(json.dumps(j) for j in jobs))
    print(f"compiling {len(unique)} configurations in {args.workers} processes", flush=True)
    results = {"versions": info, "compile_seconds": compile_all([tuple(json.loads(j)) for j in unique], args.workers),
               "table": [], "layer_norm": [], "tilings": [], "left_out": None}
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        for section, run in (("table", table), ("layer_norm", layer_norm_rows), ("tilings", tiling_rows)):
            run(sizes, device, gpu, deadline, results[section])
            write(results, out_dir, name)
    except OutOfTime as spent:
        results["left_out"] = f"out of the {args.budget:.0f} s budget from {spent} on"
    write(results, out_dir, name)
    print(markdown(results))
    print(f"wrote {out_dir / f'gpu_{name}.json'} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
