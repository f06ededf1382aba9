"""The Triton engine against the specification engine: outputs, final states, gate and cell records
and every gradient, for every LSTM variant, the GRU and the RNN, float32/bfloat16/float16, both
directions, packed batches (cases and comparison: tests/triton_cases.py).

On the CPU the kernels run in Triton's interpreter, in one worker process started with
TRITON_INTERPRET=1 (Triton decides per process whether it compiles or interprets). On a GPU the
same comparison runs at full size in this process, the multi-program grid barrier included.
Float32 must match within 1e-5 (TF32 off); bfloat16 and float16 within 2e-2 and 5e-3, or twice
what the dtype forces on the case where that is more: the specification's own error in the dtype,
or how far the exact answer moves when the inputs move by that dtype's rounding.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install 'lstmkit[gpu]')")

from lstmkit.engines import triton as engine                                     # noqa: E402
from lstmkit.engines.contract import LayerSpec                                   # noqa: E402
from lstmkit.engines.triton import launch                                        # noqa: E402
from lstmkit.engines.triton.plan import Tiling, choose                           # noqa: E402
from lstmkit.errors import BackendUnavailable                                    # noqa: E402
from lstmkit.nn.cells import LSTMVariant                                         # noqa: E402
from triton_cases import LSTM_VARIANTS, Case, evaluate                           # noqa: E402

FLOOR = {"float32": 1e-5, "bfloat16": 2e-2, "float16": 5e-3}

# Small enough for the interpreter (about a second a case): T=5, B=3, H=16 (projection to 8).
INTERPRETER_CASES = (
    [Case(v, "float32") for v in LSTM_VARIANTS]
    + [Case(v, "float32", "full") for v in ("plain", "everything", "everything_coupled")]
    + [Case(v, dt) for v in ("plain", "everything", "everything_coupled") for dt in ("bfloat16", "float16")]
    # two hidden tiles and two reduction chunks per product; then the weights on chip
    + [Case("everything", "float32", tiling=(16, 8, 8, 1)),
       Case("everything_coupled", "float32", "full", tiling=(16, 16, 16, 1, True, True))]
    + [Case("GRU", "float32"), Case("GRU", "float32", "full"), Case("GRU", "bfloat16"), Case("GRU", "float16"),
       Case("RNN_TANH", "float32"), Case("RNN_RELU", "float32", "full"), Case("RNN_RELU", "bfloat16")]
)

# On a GPU, at the sizes the engine is for: the default tilings run one program per batch tile
# (H=64), 16 programs meeting at a grid barrier every step (H=256) and 48 (H=768).
CUDA_CASES = (
    [Case(v, dt, steps=100, batch=16, hidden=256, device="cuda")
     for v in ("plain", "everything", "everything_coupled") for dt in ("float32", "bfloat16")]
    + [Case("plain", dt, "full", steps=100, batch=64, hidden=768, device="cuda") for dt in ("float32", "bfloat16")]
    + [Case("everything", "float16", steps=100, batch=5, hidden=64, device="cuda"),
       Case("GRU", "float32", steps=100, batch=16, hidden=256, device="cuda"),
       Case("RNN_TANH", "bfloat16", steps=100, batch=16, hidden=256, device="cuda")]
)


def assert_parity(case: Case, result: dict) -> None:
    assert "error" not in result, result["error"]
    for name, (error, spec_error, moved) in result["errors"].items():
        allowed = max(FLOOR[case.dtype], 2 * spec_error, 2 * moved)
        assert error <= allowed, (f"{case.id} {name}: error {error:.2e} > {allowed:.2e} (the specification in "
                                  f"{case.dtype}: {spec_error:.2e}; moved by rounding the inputs: {moved:.2e})")
    assert result["dtypes"] == [str(getattr(torch, case.dtype))], result["dtypes"]
    assert result["records_detached"], "gate and cell records must not carry gradients"


@pytest.fixture(scope="module")
def interpreted(request):
    """Results of the interpreter cases selected in this session, from two worker processes (the
    interpreter is single-threaded: two use both cores of a small machine)."""
    selected = sorted({item.callspec.params["case"].id for item in request.session.items
                       if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
                       and item.callspec.params.get("case") in INTERPRETER_CASES})
    env = dict(os.environ, TRITON_INTERPRET="1")
    worker = Path(__file__).with_name("triton_cases.py")
    halves = [selected[0::2], selected[1::2]]
    runs = [subprocess.Popen([sys.executable, str(worker), *ids], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for ids in halves if ids]
    results, errors = {}, []
    for run in runs:
        out, err = run.communicate(timeout=1200)
        errors.append(err[-3000:])
        for line in out.splitlines():
            if line.startswith("{"):
                results.update(json.loads(line))
    return results, "\n".join(errors)


@pytest.mark.parametrize("case", INTERPRETER_CASES, ids=lambda c: c.id)
def test_interpreted_kernels_match_the_specification(case, interpreted):
    results, stderr = interpreted
    assert case.id in results, f"the interpreter worker gave no result for {case.id}:\n{stderr}"
    assert_parity(case, results[case.id])


@pytest.mark.parametrize("case", CUDA_CASES, ids=lambda c: c.id)
def test_gpu_kernels_match_the_specification_at_full_size(case):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: these run on one (benchmarks/gpu_check.sh)")
    if launch.mode() != "compiled":
        pytest.skip("TRITON_INTERPRET=1 was set when Triton was imported: this process cannot compile")
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False       # the float32 specification must be float32
    try:
        assert_parity(case, evaluate(case))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def spec(device="cpu", dtype=torch.float32, kind="LSTM", **kw) -> LayerSpec:
    return LayerSpec(kind, LSTMVariant() if kind == "LSTM" else None, dtype, torch.device(device), True, **kw)


def test_why_not_names_what_it_cannot_run():
    assert "float64" in engine.why_not(spec(dtype=torch.float64))
    assert "torch.compile" in engine.why_not(spec(compiling=True))
    assert "no kernel" in engine.why_not(spec(kind="LSTMCELL"))
    assert "not served" in engine.why_not(spec(device="meta"))
    cpu = engine.why_not(spec())
    if launch.mode() == "compiled":            # CPU tensors only in an interpreting process
        assert "TRITON_INTERPRET=1" in cpu
    else:
        assert cpu is None


def test_tilings_that_cannot_run_are_refused_with_the_reason():
    assert "power of two" in Tiling(16, 12, 16, 1).why_not(64, 64, on_gpu=False)
    assert "at least 16" in Tiling(8, 16, 16, 1).why_not(64, 64, on_gpu=True)
    assert "wait forever" in Tiling(16, 16, 16, 4).why_not(64, 64, on_gpu=False)
    assert "[1, 4]" in Tiling(16, 16, 16, 8).why_not(64, 64, on_gpu=True)
    assert "one tile" in Tiling(16, 16, 16, 2, resident=True).why_not(64, 64, on_gpu=True)



def test_a_launch_this_process_cannot_make_is_refused_not_crashed():
    if launch.mode() != "compiled":
        pytest.skip("this process interprets: CPU tensors are what it runs")
    with pytest.raises(BackendUnavailable, match="TRITON_INTERPRET=1"):
        launch.Launch("LSTM", torch.zeros(1), 2, 64, 64, 4)


@pytest.mark.parametrize("batch,hidden,dtype", [(1, 128, torch.bfloat16), (16, 256, torch.float32),
                                                (16, 768, torch.bfloat16), (64, 768, torch.float32),
                                                (64, 64, torch.float16)])
def test_default_tilings_keep_every_program_resident_on_an_h100(batch, hidden, dtype):
    """The grid barrier waits for every program of a batch tile: all of them must fit on the GPU
    at once (132 multiprocessors, one program each), or the wait never ends."""
    tiling = choose(batch, hidden, hidden, 4, dtype, sms=132)
    assert tiling.why_not(hidden, hidden, on_gpu=True) is None
    assert tiling.programs * tiling.batch_tiles(batch) <= 132
    if 4 * hidden * hidden * dtype.itemsize <= 64 * 1024:
        assert tiling.programs == 1                   # small weights: no barrier at all


def test_kernels_compile_for_an_h100_barrier_included():
    """The CUDA path this machine can check without a GPU: Triton's front end, its GPU passes and
    ptxas, for the forward and backward kernels with 4 programs meeting at the grid barrier, every
    variant on, the weights on chip (the projection's 8 outputs: a reduction below tl.dot's 16)."""
    if launch.mode() != "compiled":
        pytest.skip("TRITON_INTERPRET=1 was set when Triton was imported: this process cannot compile")
    from triton.backends.compiler import GPUTarget

    from lstmkit.engines.triton.compile_check import compiled_for
    from lstmkit.engines.triton.plan import use_tiling
    case = Case("everything", "float32", hidden=16)
    tiling = Tiling(16, 16, 32, 1, resident=True, resident_back=True, num_warps=8)
    with compiled_for(GPUTarget("cuda", 90, 32)) as report, use_tiling(tiling):
        from triton_cases import cast_inputs, draw, run_engine
        run_engine(engine, case, cast_inputs(draw(case, torch.float32), torch.float32, "cpu"))
    case = Case("everything_coupled", "bfloat16", hidden=64)
    with compiled_for(GPUTarget("cuda", 90, 32)) as more, use_tiling(Tiling(16, 16, 32, 4, num_warps=8)):
        run_engine(engine, case, cast_inputs(draw(case, torch.bfloat16), torch.bfloat16, "cpu"))
    report += more
    assert [(c.kernel, c.constants["PROGRAMS"]) for c in report] == [
        ("lstm_forward", 1), ("lstm_backward", 1), ("lstm_forward", 4), ("lstm_backward", 4)]
    assert report[0].constants["RESIDENT"] and report[0].constants["P"] == 8
    assert all(c.registers is None or c.registers <= 255 for c in report)
