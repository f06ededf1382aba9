"""The fused CPU engine: an LSTM layer-direction's whole recurrence as one PyTorch custom operator.

``lstm``, ``gru`` and ``rnn`` implement the recurrence contract (``lstmkit.engines.contract``).
``lstm`` calls ``torch.ops.lstmkit.lstm_forward`` (C++, compiled on first use by
``build.py``), whose backward ``torch.ops.lstmkit.lstm_backward`` is connected with
``torch.library.register_autograd``; ``register_fake`` gives torch.compile the output shapes.
Eager calls take the same forward, setup and backward through a plain autograd.Function (``_call``),
which skips torch.library's per-call Python wrapper.
The contract's ``gates`` and ``c`` results are records for tracing: gradients do not flow through them.

Served: LSTM in float32 and float64 on CPU tensors, every variant of the contract (peepholes, layer
norm, coupled gates, projection, recurrent-dropout mask, zoneout, packed batch sizes, reverse);
GRU (``gru``) and tanh/relu RNN (``rnn``), packed and reversed too.
bfloat16 and float16 are accepted and computed in float32 (float32 speed). Not served (raises
BackendUnavailable): non-CPU tensors.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.engines.contract import (GRUResult, GRUWeights, LayerSpec, LSTMResult, LSTMState,
                                      LSTMWeights, Masks, RNNResult, RNNWeights, Steps)
from lstmkit.engines.cpu import build
from lstmkit.errors import BackendUnavailable

name = "cpu"
serves = ("LSTM (every variant), GRU and tanh/relu RNN in float32/float64 on CPU tensors "
          "(bfloat16 and float16 computed in float32); not GPU tensors")
SUPPORTED = serves
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)   # 16-bit: computed in float32, see _widen

_registered = False
_ready = False          # set once the library is loaded: keeps the lock of build.load() out of torch.compile


def is_available() -> tuple[bool, str]:
    """(True, "") when the engine is compiled (or loads from the cache); else (False, why not)."""
    global _ready
    if _ready:
        return True, ""
    ok, reason = build.load()
    if ok:
        _register_python_side()
        _ready = True
    return ok, reason


def supports(xg: Tensor | None = None, *, kind: str = "lstm", dtype: torch.dtype | None = None,
             device: torch.device | str | None = None) -> tuple[bool, str]:
    """Whether this engine serves a configuration: (True, "") or (False, what it supports instead)."""
    if kind not in ("lstm", "gru", "rnn"):
        return False, f"cpu engine: no {kind.upper()} kernel; it serves {SUPPORTED}"
    dtype = dtype or (xg.dtype if xg is not None else torch.float32)
    device = torch.device(device or (xg.device if xg is not None else "cpu"))
    if dtype not in DTYPES:
        return False, f"cpu engine: dtype {dtype} is not served; it serves {SUPPORTED}"
    if device.type != "cpu":
        return False, f"cpu engine: device {device} is not served; it serves {SUPPORTED}"
    ok, reason = is_available()
    return (True, "") if ok else (False, f"cpu engine unavailable: {reason}")


def why_not(spec: LayerSpec) -> str | None:
    """For the registry: None when this engine can run ``spec`` now, else why not."""
    if spec.exporting:
        return "a portable graph cannot hold its C++ operator"
    if _ready and spec.device.type == "cpu" and spec.dtype in DTYPES:
        return None                      # every kind of layer: the common case, checked cheaply
    ok, why = supports(kind=spec.kind.split("_")[0].lower(), dtype=spec.dtype, device=spec.device)
    return None if ok else why


def _require(xg: Tensor, kind: str = "lstm") -> None:
    ok, why = supports(xg, kind=kind)
    if not ok:
        raise BackendUnavailable(why)


def lstm(xg: Tensor, state: LSTMState, weights: LSTMWeights, masks: Masks = Masks(),
         steps: Steps = Steps()) -> LSTMResult:
    """One layer-direction of an LSTM over all T steps; see the contract."""
    _require(xg)
    dtype = xg.dtype
    tensors = _widen(xg, *state, *weights[:-1], *masks)
    out = _call(torch.ops.lstmkit.lstm_forward.default, _LSTMForward,
                *tensors, _sizes(steps.batch_sizes), bool(steps.reverse), float(weights.eps))
    y, h_n, c_n, gates, cells = (o.to(dtype) for o in out[:5])
    return LSTMResult(y, h_n, c_n, gates.detach(), cells.detach())


def _call(op, eager: type[torch.autograd.Function], *args):
    """Run a recurrence op with its autograd. Eagerly through `eager`, a plain autograd.Function with
    the same setup and backward as the op's registration: torch.library's generic wrapper adds a
    fixed cost per call (schema defaults refilled, keysets redispatched in Python) as large as a
    short small-batch sequence's whole recurrence. Under torch.compile: the registered op."""
    if torch.compiler.is_compiling() or _BELOW_AUTOGRAD is None:
        return op(*args)        # .default: the resolved overload (the packet re-resolves it every call)
    return eager.apply(*args)


# What torch.library's own wrapper uses to reach the kernel below autograd; private, so a torch
# without it takes the registered path (slower, same numbers).
_BELOW_AUTOGRAD = getattr(torch._C, "_AutoDispatchBelowAutograd", None)


def _eager_function(op, setup_context, backward) -> type[torch.autograd.Function]:
    """An autograd.Function around `op` that calls its CPU kernel directly (below autograd)."""
    class Eager(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            with _BELOW_AUTOGRAD():
                output = op(*inputs)
            setup_context(ctx, inputs, output)
            return output

        @staticmethod
        def backward(ctx, *grads):
            return backward(ctx, *grads)

    Eager.__name__ = Eager.__qualname__ = f"{op.name().split('::')[1]}_eager"
    return Eager


def _widen(*tensors: Tensor | None) -> list[Tensor | None]:
    """Check that all tensors share xg's dtype; 16-bit ones are computed in float32 (autograd casts back).

    bfloat16 and float16 are served for their storage and interface (autocast hands them over): the
    kernels accumulate in float32 anyway, so they run at float32 speed (no 16-bit GEMMs here)."""
    dtype = tensors[0].dtype
    for t in tensors:
        if t is not None and t.dtype != dtype:
            raise TypeError(f"cpu engine: every tensor must have xg's dtype {dtype}, got one of {t.dtype}")
    if dtype not in (torch.bfloat16, torch.float16):
        return list(tensors)
    return [None if t is None else t.float() for t in tensors]


def _sizes(batch_sizes):
    if isinstance(batch_sizes, Tensor):
        return batch_sizes.tolist()
    return None if batch_sizes is None else [int(b) for b in batch_sizes]


def gru(xg: Tensor, h0: Tensor, weights: GRUWeights, steps: Steps = Steps()) -> GRUResult:
    """One layer-direction of a GRU: xg (T, B, 3H) = x @ w_ih.T + b_ih -> (y, h_n, gates r, z, n)."""
    _require(xg, "gru")
    dtype = xg.dtype
    y, h_n, gates, _, _ = _call(torch.ops.lstmkit.gru_forward.default, _GRUForward,
                                *_widen(xg, h0, *weights), _sizes(steps.batch_sizes), bool(steps.reverse))
    return GRUResult(y.to(dtype), h_n.to(dtype), gates.to(dtype).detach())


def rnn(xg: Tensor, h0: Tensor, weights: RNNWeights, steps: Steps = Steps()) -> RNNResult:
    """One layer-direction of an Elman RNN: xg (T, B, H) incl. both biases -> (y, h_n)."""
    w_hh, nonlinearity = weights
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    _require(xg, "rnn")
    dtype = xg.dtype
    xg, h0, w_hh = _widen(xg, h0, w_hh)
    y, h_n, _ = _call(torch.ops.lstmkit.rnn_forward.default, _RNNForward, xg, h0, w_hh,
                      nonlinearity == "relu", _sizes(steps.batch_sizes), bool(steps.reverse))
    return RNNResult(y.to(dtype), h_n.to(dtype))


def input_projection(x: Tensor, w_ih: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (N, I) @ w_ih.T (+ bias) -> (N, G·H), forward and backward as oneDNN matmuls for float32
    (faster than torch.addmm's MKL path on AMD CPUs); other dtypes use at::addmm/at::mm.
    A drop-in for the layer's ``torch.addmm(bias, x, w_ih.t())`` when the cpu engine runs."""
    _require(x)
    return _Projection.apply(x, w_ih, bias)


class _Projection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, bias):
        ctx.save_for_backward(x, w)
        ctx.has_bias = bias is not None
        return torch.ops.lstmkit.matmul.default(x, w.t(), bias)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad = grad.contiguous()
        dx = torch.ops.lstmkit.matmul.default(grad, w, None) if ctx.needs_input_grad[0] else None
        dw = torch.ops.lstmkit.matmul.default(grad.t(), x, None) if ctx.needs_input_grad[1] else None
        db = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


# ------------------------------------------------------------------------------------------------
# Python side of the operator: autograd and fake (shape-only) kernels, registered once after loading.

_DIFF = ("xg", "h0", "c0", "w_hh", "w_hr", "w_ci", "w_cf", "w_co", "ln_hh", "ln_c_w", "ln_c_b")


def _setup_context(ctx, inputs, output):
    (xg, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc,
     batch_sizes, reverse, eps) = inputs
    _, _, _, gates, cs, cheld, hin, cnew, hraw, hhraw, stats = output
    cs = cheld if cheld.numel() else cs      # packed: the states with inactive rows held
    ctx.save_for_backward(c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc,
                          gates, cs, hin, cnew, hraw, hhraw, stats)
    ctx.args = (batch_sizes, reverse, eps)
    ctx.set_materialize_grads(False)   # no zero (T, B, ·) gradients for the unused record outputs
    ctx.present = tuple(t is not None for t in (xg, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b))


def _backward(ctx, grad_y, grad_h_n, grad_c_n, *_records):
    saved = ctx.saved_tensors
    grads = torch.ops.lstmkit.lstm_backward.default(grad_y, grad_h_n, grad_c_n, *saved, *ctx.args)
    grads = tuple(g if present else None for g, present in zip(grads, ctx.present))
    return grads + (None,) * 6                      # h_mask, zh, zc, batch_sizes, reverse, eps


def _fake_forward(xg, h0, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b, h_mask, zh, zc,
                  batch_sizes, reverse, eps):
    T, B, GH = xg.shape
    H, P = c0.shape[1], h0.shape[1]
    new = xg.new_empty
    return (new(T, B, P), new(B, P), new(B, H), new(T, B, GH), new(T, B, H),
            new(T, B, H) if batch_sizes is not None else new(0), new(T, B, P),
            new(T, B, H) if zc is not None else new(0), new(T, B, H) if w_hr is not None else new(0),
            new(T, B, GH) if ln_hh is not None else new(0),
            new(T, B, 4) if (ln_hh is not None or ln_c_w is not None) else new(0))


def _fake_backward(grad_y, grad_h_n, grad_c_n, c0, w_hh, w_hr, w_ci, w_cf, w_co, ln_hh, ln_c_w, ln_c_b,
                   h_mask, zh, zc, gates, cs, hin, cnew, hraw, hhraw, stats, batch_sizes, reverse, eps):
    like = lambda t: gates.new_empty(t.shape) if t is not None else gates.new_empty(0)  # noqa: E731
    return (gates.new_empty(gates.shape), hin.new_empty(hin.shape[1:]), like(c0), like(w_hh), like(w_hr),
            like(w_ci), like(w_cf), like(w_co), like(ln_hh), like(ln_c_w), like(ln_c_b))


def _gru_setup(ctx, inputs, output):
    xg, h0, w_hh, b_hh, batch_sizes, reverse = inputs
    _, _, gates, hin, hhn = output
    ctx.save_for_backward(w_hh, gates, hin, hhn)
    ctx.args, ctx.has_b = (batch_sizes, reverse), b_hh is not None
    ctx.set_materialize_grads(False)


def _gru_backward(ctx, grad_y, grad_h_n, *_records):
    w_hh, gates, hin, hhn = ctx.saved_tensors
    dx, dh, dw, db = torch.ops.lstmkit.gru_backward.default(grad_y, grad_h_n, w_hh, ctx.has_b, gates, hin, hhn,
                                                            *ctx.args)
    return dx, dh, dw, (db if ctx.has_b else None), None, None


def _rnn_setup(ctx, inputs, output):
    xg, h0, w_hh, relu, batch_sizes, reverse = inputs
    y, _, hin = output
    ctx.save_for_backward(w_hh, y, hin)
    ctx.args = (relu, batch_sizes, reverse)
    ctx.set_materialize_grads(False)


def _rnn_backward(ctx, grad_y, grad_h_n, _hin):
    w_hh, y, hin = ctx.saved_tensors
    dx, dh, dw = torch.ops.lstmkit.rnn_backward.default(grad_y, grad_h_n, w_hh, y, hin, *ctx.args)
    return dx, dh, dw, None, None, None


_LSTMForward = _GRUForward = _RNNForward = None   # eager autograd.Functions, made with the registration


def _register_python_side() -> None:
    global _registered, _LSTMForward, _GRUForward, _RNNForward
    if _registered:
        return
    ops = torch.ops.lstmkit
    _LSTMForward = _eager_function(ops.lstm_forward.default, _setup_context, _backward)
    _GRUForward = _eager_function(ops.gru_forward.default, _gru_setup, _gru_backward)
    _RNNForward = _eager_function(ops.rnn_forward.default, _rnn_setup, _rnn_backward)
    torch.library.register_autograd("lstmkit::lstm_forward", _backward, setup_context=_setup_context)
    torch.library.register_fake("lstmkit::lstm_forward")(_fake_forward)
    torch.library.register_fake("lstmkit::lstm_backward")(_fake_backward)
    torch.library.register_autograd("lstmkit::gru_forward", _gru_backward, setup_context=_gru_setup)
    torch.library.register_autograd("lstmkit::rnn_forward", _rnn_backward, setup_context=_rnn_setup)
    torch.library.register_fake("lstmkit::gru_forward")(
        lambda xg, h0, w_hh, b_hh, sizes, reverse: tuple(
            xg.new_empty(s) for s in ((*xg.shape[:2], h0.shape[1]), h0.shape, xg.shape,
                                      (*xg.shape[:2], h0.shape[1]), (*xg.shape[:2], h0.shape[1]))))
    torch.library.register_fake("lstmkit::rnn_forward")(
        lambda xg, h0, w_hh, relu, sizes, reverse: (xg.new_empty(xg.shape), h0.new_empty(h0.shape), xg.new_empty(xg.shape)))
    torch.library.register_fake("lstmkit::matmul")(lambda a, b, bias: a.new_empty(a.shape[0], b.shape[1]))
    torch.library.register_fake("lstmkit::lstm_step")(
        lambda x, h, c, w_cat, bias, w_hr: (h.new_empty(h.shape[1:]), h.new_empty(h.shape), c.new_empty(c.shape)))
    _registered = True


__all__ = ["name", "serves", "SUPPORTED", "is_available", "supports", "why_not", "lstm", "gru", "rnn",
           "input_projection", "BackendUnavailable"]
