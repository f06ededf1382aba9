"""The Triton engine: each layer-direction's recurrence as one fused kernel launch (forward) and one
(backward), the time loop inside the kernel, gate arithmetic fused with the recurrent product.

Implements the recurrence contract (``lstmkit.engines.contract``) for the LSTM with every variant,
the GRU and the tanh/relu RNN, both directions and packed batches, in float32 (exact products, no
TF32), bfloat16 and float16 (tensor-core products, float32 accumulation and states). It runs CUDA
tensors, and CPU tensors only in Triton's interpreter: in a process started with TRITON_INTERPRET=1
(the tests; Triton decides once per process, see ``launch.py``).
How the work is cut into programs: ``plan.py``; the kernels: ``kernels/``; docs/gpu.md.
"""
from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from lstmkit.engines.contract import (GRUResult, GRUWeights, LayerSpec, LSTMResult, LSTMState, LSTMWeights,
                                      Masks, RNNResult, RNNWeights, Steps)
from lstmkit.engines.bptt.common import StepPlan, make_plan
from lstmkit.engines.triton.gru_rnn_autograd import GRUFunction, RNNFunction
from lstmkit.engines.triton.launch import Launch, device_reason, failure, mode
from lstmkit.engines.triton.lstm_autograd import LSTMFunction

name = "triton"
serves = ("LSTM (peepholes, layer norm, coupled gates, projection, recurrent dropout, zoneout), GRU and "
          "tanh/relu RNN, both directions, packed; float32/bfloat16/float16 on CUDA tensors "
          "(CPU tensors only under TRITON_INTERPRET=1)")

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
KINDS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
NOT_INSTALLED = "triton is not installed (pip install 'lstmkit[gpu]')"


def is_available() -> tuple[bool, str]:
    """(True, "") when this process can run the engine on some device, else (False, why not)."""
    if importlib.util.find_spec("triton") is None:
        return False, NOT_INSTALLED
    if mode() == "interpreted" or torch.cuda.is_available():
        return True, ""
    return False, "no CUDA GPU here (CPU tensors run only in Triton's interpreter: TRITON_INTERPRET=1)"


def why_not(spec: LayerSpec) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return NOT_INSTALLED
    if spec.kind not in KINDS:
        return f"there is no kernel for {spec.kind}"
    if spec.dtype not in DTYPES:
        return f"dtype {spec.dtype} is not served (float32, bfloat16, float16 are)"
    if spec.compiling or spec.exporting:
        return "its kernels are launched from Python, which torch.compile, torch.export and ONNX export do not trace"
    device = torch.device(spec.device)
    reason = device_reason(device)
    if reason is not None or device.type == "cpu":
        return reason
    major, _ = torch.cuda.get_device_capability(device)
    if major < 8 and spec.dtype == torch.bfloat16 or major < 7:
        return f"a GPU of compute capability {major}.x lacks the tensor-core products for {spec.dtype}"
    kind = "RNN" if spec.kind.startswith("RNN") else spec.kind
    return failure(device, kind, spec.dtype)


def _plan(xg: Tensor, steps: Steps) -> StepPlan:
    if steps.lengths is not None:   # only exported graphs carry lengths, and this engine does not export
        raise ValueError("the triton engine takes varying lengths as batch_sizes (a packed batch), not as "
                         "a lengths tensor")
    return make_plan(xg.shape[0], xg.shape[1], steps.batch_sizes, steps.reverse)


def lstm(xg: Tensor, state: LSTMState, weights: LSTMWeights, masks: Masks = Masks(),
         steps: Steps = Steps()) -> LSTMResult:
    _, batch, rows = xg.shape
    hidden, out = state.c.shape[-1], state.h.shape[-1]
    plan = _plan(xg, steps)
    launch = Launch("LSTM", xg, batch, hidden, out, rows // hidden)
    masks = [None if m is None else m.detach() for m in masks]
    result = LSTMFunction.apply(xg, state.h, state.c, weights.w_hh, weights.w_hr, weights.w_ci, weights.w_cf,
                                weights.w_co, weights.ln_hh, weights.ln_c_w, weights.ln_c_b, *masks, plan,
                                float(weights.eps), launch)
    return LSTMResult(*result)


def gru(xg: Tensor, h0: Tensor, weights: GRUWeights, steps: Steps = Steps()) -> GRUResult:
    _, batch, rows = xg.shape
    plan = _plan(xg, steps)
    launch = Launch("GRU", xg, batch, rows // 3, rows // 3, 3)
    return GRUResult(*GRUFunction.apply(xg, h0, weights.w_hh, weights.b_hh, plan, launch))


def rnn(xg: Tensor, h0: Tensor, weights: RNNWeights, steps: Steps = Steps()) -> RNNResult:
    if weights.nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {weights.nonlinearity!r}")
    _, batch, hidden = xg.shape
    plan = _plan(xg, steps)
    launch = Launch("RNN", xg, batch, hidden, hidden, 1)
    return RNNResult(*RNNFunction.apply(xg, h0, weights.w_hh, weights.nonlinearity == "relu", plan, launch))
