"""One time step of a layer with its state as explicit tensors: the form generation and streaming
deploy (ONNX, torch.export), where the caller keeps the state between calls.

    step = lstmkit.StepModule(lstm).eval()
    y_t, h, c = step(x_t, h, c)                  # x_t (B, I); h (L·D, B, P), c (L·D, B, H)
    torch.onnx.export(step, (x_t, h, c), "step.onnx", dynamic_shapes=...)

For a GRU or an RNN the state is ``h`` alone. ``step(x_t, h, c)`` is ``lstm.step(x_t, (h, c))``,
so a loop of calls gives what one call of the layer on the whole sequence gives.
"""
from __future__ import annotations

from torch import Tensor, nn


class StepModule(nn.Module):
    """``layer.step`` with the state as separate inputs and outputs (see the module docstring)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x_t: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, ...]:
        """x_t (B, I), h (L·D, B, P) and, for an LSTM, c (L·D, B, H) -> (y_t, h', [c'])."""
        y_t, new = self.layer.step(x_t, h if c is None else (h, c))
        return (y_t, *new) if isinstance(new, tuple) else (y_t, new)

    def zero_state(self, batch: int) -> tuple[Tensor, ...]:
        """The state a sequence starts from: zeros, shaped as ``forward`` takes it."""
        return tuple(self.layer.zero_states(batch))
