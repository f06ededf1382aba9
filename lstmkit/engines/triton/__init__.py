"""The Triton engine: each layer-direction's recurrence as one fused kernel launch (forward) and one
(backward), the time loop inside the kernel, gate arithmetic fused with the recurrent product.

Implements the recurrence contract (``lstmkit.engines.contract``) for the LSTM with every variant,
the GRU and the tanh/relu RNN, both directions and packed batches, in float32 (exact products, no
TF32), bfloat16 and float16 (tensor-core products, float32 accumulation and states). It runs CUDA
tensors; on CPU tensors only under ``TRITON_INTERPRET=1``, Triton's interpreter, which the tests use.
How the work is cut into programs: ``plan.py``; the kernels: ``kernels/``; docs/gpu.md.
"""
from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from lstmkit.engines.contract import (GRUResult, GRUWeights, LayerSpec, LSTMResult, LSTMState, LSTMWeights,
                                      Masks, RNNResult, RNNWeights, Steps)

name = "triton"
serves = ("LSTM (peepholes, layer norm, coupled gates, projection, recurrent dropout, zoneout), GRU and "
          "tanh/relu RNN, both directions, packed; float32/bfloat16/float16 on CUDA tensors "
          "(CPU tensors only under TRITON_INTERPRET=1)")

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
KINDS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")


def interpreting() -> bool:
    """Whether CPU tensors may run on Triton's interpreter (slow; for tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def why_not(spec: LayerSpec) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'lstmkit[gpu]')"
    if spec.kind not in KINDS:
        return f"there is no kernel for {spec.kind}"
    if spec.dtype not in DTYPES:
        return f"dtype {spec.dtype} is not served (float32, bfloat16, float16 are)"
    if spec.compiling or spec.exporting:
        return "its kernels are launched from Python, which torch.compile, torch.export and ONNX export do not trace"
    device = torch.device(spec.device)
    if device.type == "cpu":
        return None if interpreting() else "CPU tensors run only under TRITON_INTERPRET=1 (the interpreter, for tests)"
    if device.type != "cuda":
        return f"device {device.type} is not served"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    major, _ = torch.cuda.get_device_capability(device)
    if major < 8 and spec.dtype == torch.bfloat16 or major < 7:
        return f"a GPU of compute capability {major}.x lacks the tensor-core products for {spec.dtype}"
    from lstmkit.engines.triton.launch import failure
    kind = "RNN" if spec.kind.startswith("RNN") else spec.kind
    return failure(device, kind, spec.dtype)


def lstm(xg: Tensor, state: LSTMState, weights: LSTMWeights, masks: Masks = Masks(),
         steps: Steps = Steps()) -> LSTMResult:
    from lstmkit.engines.bptt.common import make_plan
    from lstmkit.engines.triton.launch import Launch
    from lstmkit.engines.triton.lstm_autograd import LSTMFunction

    count, batch, rows = xg.shape
    hidden, out = state.c.shape[-1], state.h.shape[-1]
    plan = make_plan(count, batch, steps.batch_sizes, steps.reverse)
    launch = Launch("LSTM", xg, batch, hidden, out, rows // hidden)
    masks = [None if m is None else m.detach() for m in masks]
    result = LSTMFunction.apply(xg, state.h, state.c, weights.w_hh, weights.w_hr, weights.w_ci, weights.w_cf,
                                weights.w_co, weights.ln_hh, weights.ln_c_w, weights.ln_c_b, *masks, plan,
                                float(weights.eps), launch)
    return LSTMResult(*result)


def gru(xg: Tensor, h0: Tensor, weights: GRUWeights, steps: Steps = Steps()) -> GRUResult:
    from lstmkit.engines.bptt.common import make_plan
    from lstmkit.engines.triton.gru_rnn_autograd import GRUFunction
    from lstmkit.engines.triton.launch import Launch

    count, batch, rows = xg.shape
    launch = Launch("GRU", xg, batch, rows // 3, rows // 3, 3)
    plan = make_plan(count, batch, steps.batch_sizes, steps.reverse)
    return GRUResult(*GRUFunction.apply(xg, h0, weights.w_hh, weights.b_hh, plan, launch))


def rnn(xg: Tensor, h0: Tensor, weights: RNNWeights, steps: Steps = Steps()) -> RNNResult:
    from lstmkit.engines.bptt.common import make_plan
    from lstmkit.engines.triton.gru_rnn_autograd import RNNFunction
    from lstmkit.engines.triton.launch import Launch

    if weights.nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {weights.nonlinearity!r}")
    count, batch, hidden = xg.shape
    launch = Launch("RNN", xg, batch, hidden, hidden, 1)
    plan = make_plan(count, batch, steps.batch_sizes, steps.reverse)
    return RNNResult(*RNNFunction.apply(xg, h0, weights.w_hh, weights.nonlinearity == "relu", plan, launch))
