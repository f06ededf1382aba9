"""Cases for the Triton engine's parity tests, and the worker that runs them.

The engine's answers are compared with the specification engine (``lstmkit.engines.loop``) in
float64 on the same (rounded) inputs: outputs, final states, gate records, cell records and the
gradient of every input. Two more measures say how much error a dtype forces on a case: the
specification's own error in that dtype, and the sensitivity of the float64 answer to relative
perturbations of the inputs of that dtype's rounding size (layer norms over a few units with a
projection make some gradients move by 10x the rounding: no implementation in bfloat16 does better).

Triton decides once per process whether its kernels are compiled or interpreted, so the CPU
checks run here, in a worker process started with TRITON_INTERPRET=1:
    TRITON_INTERPRET=1 python tests/triton_cases.py CASE_ID ... -> one JSON line per case
and tests/test_triton_engine.py asserts on what it prints. On a GPU the same cases run in-process.
"""
from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field

import torch

from lstmkit.engines import loop
from lstmkit.engines.contract import GRUWeights, LSTMState, LSTMWeights, Masks, RNNWeights, Steps

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

LSTM_VARIANTS = {
    "plain": {},
    "peephole": {"peephole": True},
    "layer_norm": {"layer_norm": True},
    "coupled": {"coupled": True},
    "projection": {"proj": True},
    "recurrent_dropout": {"h_mask": True},
    "zoneout_train": {"zoneout": "train"},
    "zoneout_eval": {"zoneout": "eval"},
    "coupled_peephole": {"coupled": True, "peephole": True},
    "everything": {"peephole": True, "layer_norm": True, "proj": True, "h_mask": True, "zoneout": "train"},
    "everything_coupled": {"coupled": True, "peephole": True, "layer_norm": True, "h_mask": True,
                           "zoneout": "eval"},
}


@dataclass(frozen=True)
class Case:
    kind: str                       # "LSTM" variant name, "GRU", "RNN_TANH", "RNN_RELU"
    dtype: str
    layout: str = "packed_reverse"  # "full" | "packed_reverse"
    steps: int = 5
    batch: int = 3
    hidden: int = 16
    tiling: tuple = ()              # lstmkit.engines.triton.plan.Tiling fields, () for the default
    device: str = "cpu"

    @property
    def id(self) -> str:
        tiling = "-" + "_".join(map(str, self.tiling)) if self.tiling else ""
        return f"{self.kind}-{self.dtype}-{self.layout}-T{self.steps}B{self.batch}H{self.hidden}{tiling}-{self.device}"

    def batch_sizes(self) -> tuple[int, ...] | None:
        if self.layout == "full":
            return None
        # sorted lengths: every row drops out at some step, the first stays to the end
        return tuple(max(1, self.batch - (self.batch * t) // self.steps) for t in range(self.steps))


@dataclass
class Inputs:
    leaves: dict                                # name -> tensor requiring grad
    masks: dict = field(default_factory=dict)   # constants


def draw(case: Case, dtype: torch.dtype) -> Inputs:
    """Inputs drawn in float64 from a seed of the case's name, then rounded to ``dtype``."""
    gen = torch.Generator().manual_seed(sum(map(ord, case.kind)) + case.hidden)
    rand = lambda *shape, scale=0.5: (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)  # noqa: E731
    steps, batch, hidden = case.steps, case.batch, case.hidden
    if case.kind in ("GRU", "RNN_TANH", "RNN_RELU"):
        rows = (3 if case.kind == "GRU" else 1) * hidden
        leaves = {"xg": rand(steps, batch, rows, scale=1.0), "h0": rand(batch, hidden),
                  "w_hh": rand(rows, hidden, scale=0.3)}
        if case.kind == "GRU":
            leaves["b_hh"] = rand(rows)
        return Inputs(leaves)
    opts = LSTM_VARIANTS[case.kind]
    rows = (3 if opts.get("coupled") else 4) * hidden
    out = hidden // 2 if opts.get("proj") else hidden
    leaves = {"xg": rand(steps, batch, rows, scale=1.0), "h0": rand(batch, out), "c0": rand(batch, hidden),
              "w_hh": rand(rows, out, scale=0.3)}
    if opts.get("proj"):
        leaves["w_hr"] = rand(out, hidden, scale=0.3)
    if opts.get("peephole"):
        if not opts.get("coupled"):
            leaves["w_ci"] = rand(hidden)
        leaves.update(w_cf=rand(hidden), w_co=rand(hidden))
    if opts.get("layer_norm"):   # gains away from 1 so that their gradients matter
        leaves.update(ln_hh=1 + rand(rows, scale=0.2), ln_c_w=1 + rand(hidden, scale=0.2),
                      ln_c_b=rand(hidden, scale=0.2))
    masks = {}
    if opts.get("h_mask"):
        masks["h_mask"] = ((torch.rand(batch, out, generator=gen) < 0.7).double() / 0.7).to(dtype)
    if opts.get("zoneout") == "train":
        masks["zh"] = (torch.rand(steps, batch, out, generator=gen) < 0.3).to(dtype)
        masks["zc"] = (torch.rand(steps, batch, hidden, generator=gen) < 0.5).to(dtype)
    elif opts.get("zoneout") == "eval":
        masks["zh"] = torch.full((steps, batch, out), 0.1, dtype=dtype)
        masks["zc"] = torch.full((1, 1, hidden), 0.4, dtype=dtype).expand(steps, batch, hidden)
    return Inputs(leaves, masks)


def cast_inputs(inputs: Inputs, dtype: torch.dtype, device: str) -> Inputs:
    """Fresh leaves (and masks) in ``dtype`` on ``device``, from the same values."""
    leaves = {k: v.detach().to(device=device, dtype=dtype).requires_grad_(True) for k, v in inputs.leaves.items()}
    return Inputs(leaves, {k: v.to(device=device, dtype=dtype) for k, v in inputs.masks.items()})


def run_engine(engine, case: Case, inputs: Inputs) -> dict[str, torch.Tensor]:
    """Outputs and the gradients of every leaf under a fixed random projection of y, h_n (and c_n)."""
    p, steps = inputs.leaves, Steps(case.batch_sizes(), case.layout != "full")
    if case.kind == "GRU":
        result = engine.gru(p["xg"], p["h0"], GRUWeights(p["w_hh"], p["b_hh"]), steps)
        names = ("y", "h_n", "gates")
    elif case.kind.startswith("RNN"):
        result = engine.rnn(p["xg"], p["h0"], RNNWeights(p["w_hh"], case.kind[4:].lower()), steps)
        names = ("y", "h_n")
    else:
        weights = LSTMWeights(p["w_hh"], p.get("w_hr"), p.get("w_ci"), p.get("w_cf"), p.get("w_co"),
                              p.get("ln_hh"), p.get("ln_c_w"), p.get("ln_c_b"))
        result = engine.lstm(p["xg"], LSTMState(p["h0"], p["c0"]), weights, Masks(**inputs.masks), steps)
        names = ("y", "h_n", "c_n", "gates", "cells")
    differentiable = [r for name, r in zip(names, result) if name in ("y", "h_n", "c_n")]
    gen = torch.Generator().manual_seed(1)
    loss = sum((r * torch.randn(r.shape, generator=gen, dtype=torch.float64).to(r)).sum() for r in differentiable)
    grads = torch.autograd.grad(loss, list(p.values()))
    values = dict(zip(names, result))
    values.update({f"d_{name}": g for name, g in zip(p, grads)})
    return values


def _error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest difference, relative to the larger of 1 and the largest true value."""
    if got.shape != want.shape:
        return float("inf")
    scale = max(1.0, want.double().abs().max().item() if want.numel() else 0.0)
    return (got.detach().double().cpu() - want.detach().double().cpu()).abs().max().item() / scale


ROUNDING = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def sensitivity(case: Case, drawn: Inputs, truth: dict, dtype: torch.dtype, draws: int = 2) -> dict[str, float]:
    """Largest change of each float64 answer when every input moves by a relative N(0, u) (u: the
    unit roundoff of ``dtype``), over a few draws."""
    worst = dict.fromkeys(truth, 0.0)
    for seed in range(draws):
        gen = torch.Generator().manual_seed(seed)
        moved = cast_inputs(drawn, torch.float64, case.device)
        with torch.no_grad():
            for leaf in moved.leaves.values():
                noise = torch.randn(leaf.shape, generator=gen, dtype=torch.float64).to(leaf.device)
                leaf.mul_(1 + ROUNDING[dtype] * noise)
        answer = run_engine(loop, case, moved)
        worst = {name: max(worst[name], _error(answer[name], want)) for name, want in truth.items()}
    return worst


def evaluate(case: Case) -> dict:
    """{quantity: [engine error, specification-in-dtype error, sensitivity]} against the float64
    specification, the dtypes the engine returned and whether its records are free of autograd."""
    from lstmkit.engines import triton as engine
    from lstmkit.engines.triton.plan import Tiling, use_tiling

    dtype = DTYPES[case.dtype]
    drawn = draw(case, dtype)
    inputs = cast_inputs(drawn, dtype, case.device)
    if case.tiling:
        with use_tiling(Tiling(*case.tiling)):
            got = run_engine(engine, case, inputs)
    else:
        got = run_engine(engine, case, inputs)
    truth = run_engine(loop, case, cast_inputs(drawn, torch.float64, case.device))
    spec = run_engine(loop, case, cast_inputs(drawn, dtype, case.device))
    moved = sensitivity(case, drawn, truth, dtype)
    errors = {name: [_error(got[name], want), _error(spec[name], want), moved[name]] for name, want in truth.items()}
    records = [got[name] for name in ("gates", "cells") if name in got]
    return {"errors": errors, "dtypes": sorted({str(v.dtype) for v in got.values()}),
            "records_detached": all(not r.requires_grad for r in records)}


def worker(ids: list[str], cases: dict[str, Case]) -> None:
    """Evaluate each case, printing one JSON line {id: result} or {id: {"error": traceback}}."""
    for case_id in ids:
        try:
            result = evaluate(cases[case_id])
        except Exception:  # reported to the test that owns the case
            result = {"error": traceback.format_exc()}
        print(json.dumps({case_id: result}), flush=True)


if __name__ == "__main__":
    from test_triton_engine import INTERPRETER_CASES   # noqa: E402  (this folder is on sys.path)
    torch.set_num_threads(1)
    worker(sys.argv[1:], {c.id: c for c in INTERPRETER_CASES})
