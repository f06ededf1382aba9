"""Speed of the fused CPU engine against torch.nn.LSTM, the bptt engine and the step floor.

    python benchmarks/bench_cpu.py [--quick] [--threads N] [--out benchmarks/results/cpu.json]

Every ratio is measured in this one process on the same inputs, after warm-up, as the median of
several runs (these machines are shared and noisy: read the ratios, not the absolute times).
Sections, as issue 6 asks:
  train  forward+backward of a plain float32 LSTM, T=100: lstmkit cpu vs torch.nn.LSTM, and the
         arithmetic floor (its flops at the best matrix-product rate torch reaches here)
  variant  layer-norm and peephole LSTMs: cpu vs the bptt engine, and vs plain cpu
  step   one step, B=1, I=H=256, each in a generation loop (the state it returned fed back):
         LSTMStepper and LSTM.step vs nn.LSTM on one step vs nn.LSTMCell vs the floor
         (one 4H×(I+H) matrix-vector product by torch, weights in cache) and vs one read of those
         weights (w.sum(): a bound no matrix-vector product can beat)
  linear training time at T=1000 over T=100 (should be ≤ 11×)
Writes a markdown table to stdout and everything to JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
from pathlib import Path

import torch
from torch import nn

import lstmkit
from lstmkit.benchmark import forward_backward, interleaved, seconds_per_call
from lstmkit.engines import cpu


def paired(*args):
    """paired(model_a, model_b, ..., x, repeats): time the models' training steps in turn (so load
    changes hit all alike); returns their median seconds in the same order."""
    *models, x, repeats = args
    return tuple(interleaved({k: forward_backward(m, x) for k, m in enumerate(models)}, repeats).values())


def gemm_ceiling(repeats: int) -> float:
    """The fastest float32 matrix-product rate (GFLOP/s) torch shows here, over the shapes a T=100,
    B=8, H=256 LSTM's fwd+bwd multiplies ((800, 256) x (256, 1024) and its transposes) and 1024³,
    taking each product's fastest sample: a ceiling on any engine's arithmetic, not a typical rate."""
    a, w, g = torch.randn(800, 256), torch.randn(1024, 256), torch.randn(800, 1024)
    big = torch.randn(1024, 1024)
    products = [(lambda: a @ w.t(), 2 * 800 * 1024 * 256), (lambda: g @ w, 2 * 800 * 1024 * 256),
                (lambda: g.t() @ a, 2 * 800 * 1024 * 256), (lambda: big @ big, 2 * 1024 ** 3)]
    return max(flops / min(seconds_per_call(fn) for _ in range(repeats)) for fn, flops in products) / 1e9


def bench_train(sizes, T, repeats):
    """cpu vs torch.nn.LSTM, and the arithmetic floor: fwd+bwd of a plain LSTM with I=H is
    24·T·B·H·(I+H) flops (forward 2·T·B·4H·(I+H), backward twice that), so no engine takes less
    than those flops at the best product rate measured here; native_ms / floor_ms is the largest
    speed-up over torch this machine allows."""
    rows = []
    for B, H in sizes:
        torch.manual_seed(0)
        ours = lstmkit.LSTM(H, H, backend="cpu")
        native = nn.LSTM(H, H)
        native.load_state_dict(ours.state_dict())
        x = torch.randn(T, B, H)
        t_cpu, t_native = paired(ours, native, x, repeats)
        rows.append(dict(section="train", B=B, H=H, I=H, T=T, cpu_ms=t_cpu * 1e3, native_ms=t_native * 1e3,
                         speedup_vs_native=t_native / t_cpu))
    gflops = max(gemm_ceiling(2 * repeats) for _ in range(2))       # measured twice: these machines are shared
    for r in rows:
        r.update(gemm_gflops=gflops, flop_floor_ms=24 * T * r["B"] * r["H"] * (r["I"] + r["H"]) / gflops / 1e6)
        r["max_speedup_vs_native"] = r["native_ms"] / r["flop_floor_ms"]
    return rows


def bench_variants(B, H, T, repeats):
    rows = []
    torch.manual_seed(0)
    x = torch.randn(T, B, H)
    plain = lstmkit.LSTM(H, H, backend="cpu")
    for name in ("layer_norm", "peephole", "coupled_gates"):
        ours = lstmkit.LSTM(H, H, backend="cpu", **{name: True})
        bptt = lstmkit.LSTM(H, H, backend="bptt", **{name: True})
        bptt.load_state_dict(ours.state_dict())
        t_cpu, t_bptt, t_plain = paired(ours, bptt, plain, x, repeats)
        rows.append(dict(section="variant", variant=name, B=B, H=H, I=H, T=T, cpu_ms=t_cpu * 1e3,
                         bptt_ms=t_bptt * 1e3, speedup_vs_bptt=t_bptt / t_cpu,
                         plain_cpu_ms=t_plain * 1e3, time_vs_plain=t_cpu / t_plain))
    return rows


def bench_gru(sizes, T, repeats):
    rows = []
    for B, H in sizes:
        for kind in ("GRU", "RNN"):
            torch.manual_seed(0)
            ours = getattr(lstmkit, kind)(H, H, backend="cpu")
            native = getattr(nn, kind)(H, H)
            native.load_state_dict(ours.state_dict())
            t_cpu, t_native = paired(ours, native, torch.randn(T, B, H), repeats)
            rows.append(dict(section="gru", kind=kind, B=B, H=H, T=T, cpu_ms=t_cpu * 1e3,
                             native_ms=t_native * 1e3, speedup_vs_native=t_native / t_cpu))
    return rows


@torch.no_grad()
def bench_step(H, inner, repeats):
    from lstmkit.engines.cpu.step import LSTMStepper

    torch.manual_seed(0)
    lstm, cell = nn.LSTM(H, H), nn.LSTMCell(H, H)
    stepper = LSTMStepper(lstm)
    ours = lstmkit.LSTM(H, H).eval()                      # the public API: model.step (checks + stepper)
    ours.load_state_dict(lstm.state_dict())
    x1, x = torch.randn(1, 1, H), torch.randn(1, H)
    state1 = (torch.zeros(1, 1, H), torch.zeros(1, 1, H))
    cell_state = (torch.zeros(1, H), torch.zeros(1, H))
    w = torch.randn(4 * H, 2 * H)
    v, out = torch.randn(1, 2 * H), torch.empty(1, 4 * H)
    def loop(step, state, returned_state):
        """A generation loop: every contender gets back the state it returned the step before."""
        carried = [state]

        def run():
            carried[0] = returned_state(step(carried[0]))
        return run

    timings = {
        "stepper": loop(lambda s: stepper(x, s), state1, lambda out: out[1]),
        "lstmkit.LSTM.step": loop(lambda s: ours.step(x, s), state1, lambda out: out[1]),
        "nn.LSTM one step": loop(lambda s: lstm(x1, s), state1, lambda out: out[1]),
        "nn.LSTMCell": loop(lambda s: cell(x, s), cell_state, lambda out: out),
        "floor: 4H×(I+H) matvec": lambda: torch.mm(v, w.t(), out=out),
        # No matvec can beat one read of its weights: torch's BLAS matvec is ~2x that on AVX2 EPYCs.
        "weights read once (w.sum)": lambda: w.sum(),
    }
    us = {name: seconds * 1e6 for name, seconds in interleaved(timings, repeats, inner).items()}
    return [dict(section="step", B=1, H=H, I=H, us_per_step=us,
                 speedup_vs_lstm=us["nn.LSTM one step"] / us["stepper"],
                 speedup_vs_cell=us["nn.LSTMCell"] / us["stepper"],
                 step_api_vs_cell=us["nn.LSTMCell"] / us["lstmkit.LSTM.step"],
                 over_floor=us["stepper"] / us["floor: 4H×(I+H) matvec"],
                 over_read=us["stepper"] / us["weights read once (w.sum)"])]


def bench_linear(B, H, repeats):
    torch.manual_seed(0)
    model = lstmkit.LSTM(H, H, backend="cpu")
    times = interleaved({T: forward_backward(model, torch.randn(T, B, H)) for T in (100, 1000)}, repeats)
    t100, t1000 = times[100], times[1000]
    return [dict(section="linear", B=B, H=H, t100_ms=t100 * 1e3, t1000_ms=t1000 * 1e3, ratio=t1000 / t100)]


def machine() -> dict:
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001 - machine details are best effort
            return ""
    return dict(cpu=sh("lscpu | grep 'Model name' | sed 's/.*: *//'"), cores=torch.get_num_threads(),
                load=sh("uptime"), torch=torch.__version__, python=platform.python_version(),
                capability=torch.backends.cpu.get_cpu_capability())


def markdown(rows) -> str:
    out = []
    train = [r for r in rows if r["section"] == "train"]
    if train:
        out += ["| fwd+bwd float32, T=%d | cpu ms | nn.LSTM ms | speed-up | flop floor ms (best GEMM rate) "
                "| largest speed-up possible |" % train[0]["T"], "|---|---|---|---|---|---|"]
        out += [f"| B={r['B']}, H=I={r['H']} | {r['cpu_ms']:.1f} | {r['native_ms']:.1f} | "
                f"{r['speedup_vs_native']:.2f}× | {r['flop_floor_ms']:.1f} ({r['gemm_gflops']:.0f} GFLOP/s) | "
                f"{r['max_speedup_vs_native']:.2f}× |" for r in train]
    for r in (r for r in rows if r["section"] == "variant"):
        out += [f"| {r['variant']} B={r['B']} H={r['H']} T={r['T']}: cpu {r['cpu_ms']:.1f} ms, bptt "
                f"{r['bptt_ms']:.1f} ms ({r['speedup_vs_bptt']:.1f}× faster), "
                f"{r['time_vs_plain']:.2f}× plain cpu ({r['plain_cpu_ms']:.1f} ms) |"]
    for r in (r for r in rows if r["section"] == "gru"):
        out += [f"| {r['kind']} fwd+bwd B={r['B']} H={r['H']} T={r['T']}: cpu {r['cpu_ms']:.1f} ms, torch.nn "
                f"{r['native_ms']:.1f} ms ({r['speedup_vs_native']:.2f}×) |"]
    for r in (r for r in rows if r["section"] == "step"):
        out += ["", "| one step, B=1, I=H=%d | µs/step |" % r["H"], "|---|---|"]
        out += [f"| {name} | {us:.1f} |" for name, us in r["us_per_step"].items()]
        out += [f"| stepper speed-up: {r['speedup_vs_lstm']:.1f}× vs nn.LSTM, {r['speedup_vs_cell']:.1f}× vs "
                f"LSTMCell ({r['step_api_vs_cell']:.1f}× through LSTM.step), {r['over_floor']:.2f}× the floor, "
                f"{r['over_read']:.2f}× one read of the weights | |"]
    for r in (r for r in rows if r["section"] == "linear"):
        out += ["", f"T=1000 / T=100 training time (B={r['B']}, H={r['H']}): {r['ratio']:.1f}× "
                f"({r['t1000_ms']:.0f} / {r['t100_ms']:.0f} ms)"]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--sections", default="train,variant,gru,step,linear")
    parser.add_argument("--out", default="benchmarks/results/cpu.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ok, reason = cpu.is_available()
    if not ok:
        raise SystemExit(f"cpu engine unavailable: {reason}")
    repeats = 3 if args.quick else 5
    sections = args.sections.split(",")
    sizes = [(1, 256), (8, 256), (32, 256), (64, 512)] if args.quick else \
        [(1, 256), (8, 256), (8, 512), (32, 256), (32, 512), (64, 256), (64, 512)]
    info = machine()
    rows = []
    if "train" in sections:
        rows += bench_train(sizes, 100, repeats)
    if "variant" in sections:
        for B in (1, 4, 32):
            rows += bench_variants(B, 256, 100, repeats)
    if "gru" in sections:
        rows += bench_gru([(8, 256), (32, 256)], 100, repeats)
    if "step" in sections:
        rows += bench_step(256, 200 if args.quick else 1000, repeats)
    if "linear" in sections:
        rows += bench_linear(8, 256, repeats)
    info["load_after"] = machine()["load"]
    print(f"machine: {info['cpu']}, {info['cores']} threads, torch {info['torch']} ({info['capability']})")
    print(f"load before: {info['load']}\nload after: {info['load_after']}\n")
    print(markdown(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(machine=info, rows=rows), indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
