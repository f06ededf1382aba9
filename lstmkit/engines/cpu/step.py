"""Fast one-step inference: a whole stacked LSTM advanced by one time step in a single C++ call.

    stepper = LSTMStepper(model)               # lstmkit.LSTM or torch.nn.LSTM; weights packed once
    y_t, state = stepper(x_t, state)           # x_t (B, I) or (I,); state (h, c) as nn.LSTM's, or None
    stepper.refresh()                          # re-pack after the weights changed (training, loading)

Each layer's [W_ih | W_hh] is concatenated once into a (4H, I + P) matrix (stored as the kernel's
16-column panels where it has them) and the two biases summed, so a step is, per layer, one matrix
product of [x | h] and one fused pass over the gates (step.cpp).
The packed weights live in a C++ object (python_bindings.cpp) called directly, not through the
dispatcher: at B = 1 the dispatcher's fixed cost is a large part of a step. torch.ops.lstmkit.lstm_step
is the same kernel as an operator, for torch.compile and TorchScript.
Inference only: no gradient flows through a step. Serves the standard LSTM (with proj_size) in
float32/float64, unidirectional, as in evaluation (no dropout); the structural variants (peepholes,
layer norm, coupled gates), zoneout and bidirectional modules raise BackendUnavailable.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.errors import BackendUnavailable

SUPPORTED = ("a unidirectional standard LSTM (any num_layers, bias, proj_size) in float32/float64 on CPU; "
             "not peepholes, layer norm, coupled gates, zoneout or bidirectional modules")


class LSTMStepper:
    """One time step of ``lstm`` (all layers) per call, weights prepared once; see the module docstring."""

    def __init__(self, lstm: nn.Module) -> None:
        from lstmkit.engines import cpu

        ok, reason = cpu.is_available()
        if not ok:
            raise BackendUnavailable(f"the step API needs the cpu engine, which is unavailable: {reason}")
        variant = getattr(lstm, "variant", None)
        # zoneout changes the recurrence even in evaluation (it uses its expectation there)
        structural = (variant.structural + variant.stochastic(False)) if variant is not None else ()
        if getattr(lstm, "bidirectional", False) or structural:
            what = "bidirectional" if getattr(lstm, "bidirectional", False) else ", ".join(structural)
            raise BackendUnavailable(f"LSTMStepper cannot step a {what} LSTM; it serves {SUPPORTED}")
        self.module = lstm
        self.num_layers = lstm.num_layers
        self.hidden_size = lstm.hidden_size
        self.proj_size = getattr(lstm, "proj_size", 0) or 0
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Pack the module's current weights: [W_ih | W_hh] (4H, I + P) and b_ih + b_hh (4H,) per layer."""
        from lstmkit.engines.cpu import build

        engine = build.module()
        pack = engine.pack_step_weights           # 16-column panels where the kernel has them
        w_cat, bias, w_hr = [], [], []
        for k in range(self.num_layers):
            w_ih, w_hh = getattr(self.module, f"weight_ih_l{k}"), getattr(self.module, f"weight_hh_l{k}")
            if w_ih.dtype not in (torch.float32, torch.float64) or w_ih.device.type != "cpu":
                raise BackendUnavailable(f"LSTMStepper: {w_ih.dtype} on {w_ih.device} is not served; "
                                         f"it serves {SUPPORTED}")
            w_cat.append(pack(torch.cat([w_ih, w_hh], dim=1)))
            b_ih = getattr(self.module, f"bias_ih_l{k}", None)
            b_hh = getattr(self.module, f"bias_hh_l{k}", None)
            bias.append(w_ih.new_zeros(w_ih.shape[0]) if b_ih is None else (b_ih + b_hh).contiguous())
            if self.proj_size:
                w_hr.append(getattr(self.module, f"weight_hr_l{k}").detach().contiguous())

        self._w_cat, self._bias, self._w_hr = w_cat, bias, w_hr  # for the operator (tests, compile)
        self._step = engine.PackedStep(w_cat, bias, w_hr)
        self.dtype = w_cat[0].dtype

    def initial_state(self, batch: int = 1) -> tuple[Tensor, Tensor]:
        """Zero state (h (L, B, P), c (L, B, H)), as nn.LSTM starts."""
        out = self.proj_size or self.hidden_size
        return (torch.zeros(self.num_layers, batch, out, dtype=self.dtype),
                torch.zeros(self.num_layers, batch, self.hidden_size, dtype=self.dtype))

    def __call__(self, x_t: Tensor, state: tuple[Tensor, Tensor] | None = None):
        """Advance one step: x_t (B, I) or (I,) -> (y_t (B, P) or (P,), (h (L, B, P), c (L, B, H)))."""
        unbatched = x_t.dim() == 1
        if unbatched:
            x_t = x_t.unsqueeze(0)
            if state is not None:
                state = (state[0].unsqueeze(1), state[1].unsqueeze(1))
        if state is None:
            state = self.initial_state(x_t.shape[0])
        y, h, c = self._step(x_t, state[0], state[1])
        if unbatched:
            return y[0], (h[:, 0], c[:, 0])
        return y, (h, c)


__all__ = ["LSTMStepper", "SUPPORTED"]
