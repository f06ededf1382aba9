"""Random cases of the recurrence contract, and one way to run any engine on them.

Every engine is tested against ``lstmkit.engines.loop`` (the specification) through these: the
same structures the layers hand an engine, every differentiable tensor a leaf whose gradient is
compared.
"""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from lstmkit import engines
from lstmkit.engines.contract import GRUWeights, LSTMState, LSTMWeights, Masks, RNNWeights, Steps

EPS = 1e-5

# Named option sets of the LSTM contract; P is proj_size.
CONFIGS = {
    "plain": {}, "coupled": dict(coupled=True), "peephole": dict(peephole=True), "layer_norm": dict(ln=True),
    "projection": dict(P=4), "mask": dict(mask=True), "zoneout": dict(zoneout=True),
    "zoneout_eval": dict(zoneout="eval"), "packed": dict(packed=True), "reverse": dict(reverse=True),
    "packed_reverse_peephole": dict(packed=True, reverse=True, peephole=True),
    "everything": dict(P=4, peephole=True, ln=True, mask=True, zoneout=True, packed=True, reverse=True),
    "everything_coupled": dict(P=4, coupled=True, peephole=True, ln=True, mask=True, zoneout="eval",
                               packed=True),
}


class LSTMCase(NamedTuple):
    xg: torch.Tensor
    state: LSTMState
    weights: LSTMWeights
    masks: Masks
    steps: Steps

    def leaves(self) -> dict[str, torch.Tensor]:
        """The differentiable inputs by name: xg, h, c and every weight tensor present."""
        named = {"xg": self.xg, **self.state._asdict(), **self.weights._asdict()}
        return {k: v for k, v in named.items() if isinstance(v, torch.Tensor)}

    def with_leaves(self) -> "LSTMCase":
        """A copy whose differentiable inputs are fresh leaves that require grad."""
        fresh = lambda v: v.detach().clone().requires_grad_(True) if isinstance(v, torch.Tensor) else v  # noqa
        return LSTMCase(fresh(self.xg), LSTMState(*map(fresh, self.state)),
                        LSTMWeights(*map(fresh, self.weights)), self.masks, self.steps)

    def to(self, **kwargs) -> "LSTMCase":
        move = lambda v: v.to(**kwargs) if isinstance(v, torch.Tensor) else v  # noqa: E731
        return LSTMCase(move(self.xg), LSTMState(*map(move, self.state)), LSTMWeights(*map(move, self.weights)),
                        Masks(*map(move, self.masks)), self.steps)


def lstm_case(T=5, B=3, H=6, P=0, dtype=torch.float64, coupled=False, peephole=False, ln=False,
              mask=False, zoneout=False, packed=False, reverse=False, seed=0, batch_sizes=None) -> LSTMCase:
    """Random contract arguments with the named options on; drawn in float64, then rounded to dtype
    so every dtype sees the same numbers. ``zoneout="eval"`` gives keep-probabilities, not masks."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, scale=1.0: (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)  # noqa
    u = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    G, out = (3 if coupled else 4), (P or H)
    if packed and batch_sizes is None:
        batch_sizes = sorted(torch.randint(1, B + 1, (T,), generator=g).tolist(), reverse=True)
        batch_sizes[0] = B
    weights = LSTMWeights(
        w_hh=r(G * H, out, scale=0.5), w_hr=r(out, H, scale=0.5) if P else None,
        w_ci=r(H) if peephole and not coupled else None, w_cf=r(H) if peephole else None,
        w_co=r(H) if peephole else None, ln_hh=1 + r(G * H, scale=0.1) if ln else None,
        ln_c_w=1 + r(H, scale=0.1) if ln else None, ln_c_b=r(H, scale=0.1) if ln else None, eps=EPS)
    if zoneout == "eval":
        zh, zc = torch.full((T, B, out), 0.1, dtype=dtype), torch.full((1, 1, H), 0.4, dtype=dtype).expand(T, B, H)
    elif zoneout:
        zh, zc = (u(T, B, out) > 0.5).to(dtype), (u(T, B, H) > 0.5).to(dtype)
    else:
        zh = zc = None
    h_mask = ((u(B, out) > 0.3).to(dtype) / 0.7) if mask else None
    return LSTMCase(r(T, B, G * H), LSTMState(r(B, out), r(B, H)), weights, Masks(h_mask, zh, zc),
                    Steps(None if batch_sizes is None else tuple(batch_sizes), reverse))


def run_lstm(engine, case: LSTMCase, seed: int = 1, grads: bool = True):
    """The engine's five results, and the gradients of every leaf under a fixed random projection
    of y, h_n and c_n."""
    case = case.with_leaves()
    result = engine.lstm(case.xg, case.state, case.weights, case.masks, case.steps)
    if not grads:
        return list(result), {}
    leaves = case.leaves()
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o)).sum() for o in result[:3])
    found = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return list(result), dict(zip(leaves, found))


class SimpleCase(NamedTuple):
    kind: str                    # "gru" or "rnn"
    xg: torch.Tensor
    h0: torch.Tensor
    weights: GRUWeights | RNNWeights
    steps: Steps


def simple_case(kind, T=5, B=3, H=4, dtype=torch.float64, packed=False, reverse=False, bias=True,
                nonlinearity="tanh", seed=0, batch_sizes=None) -> SimpleCase:
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, scale=1.0: (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)  # noqa
    G = 3 if kind == "gru" else 1
    if packed and batch_sizes is None:
        batch_sizes = sorted(torch.randint(1, B + 1, (T,), generator=g).tolist(), reverse=True)
        batch_sizes[0] = B
    xg, h0, w_hh = r(T, B, G * H), r(B, H), r(G * H, H, scale=0.5)
    weights = GRUWeights(w_hh, r(G * H) if bias else None) if kind == "gru" else RNNWeights(w_hh, nonlinearity)
    return SimpleCase(kind, xg, h0, weights, Steps(None if batch_sizes is None else tuple(batch_sizes), reverse))


def run_simple(engine, case: SimpleCase, seed: int = 1):
    """A GRU or RNN case on ``engine``: its results and the gradients of xg, h0 and the weights."""
    fresh = lambda v: v.detach().clone().requires_grad_(True) if isinstance(v, torch.Tensor) else v  # noqa
    xg, h0, weights = fresh(case.xg), fresh(case.h0), type(case.weights)(*map(fresh, case.weights))
    run = engine.gru if case.kind == "gru" else engine.rnn
    result = run(xg, h0, weights, case.steps)
    leaves = {"xg": xg, "h0": h0, **{k: v for k, v in weights._asdict().items() if isinstance(v, torch.Tensor)}}
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o)).sum() for o in result[:2])
    return list(result), dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


def engine_params(*names: str) -> list:
    """pytest parameters for the named registered engines; one that cannot run here is skipped with
    its reason, never dropped."""
    params = []
    for name in names:
        engine = engines.ENGINES[name]
        ok, reason = engine.is_available() if hasattr(engine, "is_available") else (True, "")
        marks = [] if ok else [pytest.mark.skip(reason=f"{name} engine unavailable: {reason}")]
        params.append(pytest.param(engine, id=name, marks=marks))
    return params


# every engine with the recurrence contract, but the specification they are compared with
RECURRENCE_ENGINES = [name for name, e in engines.ENGINES.items() if hasattr(e, "lstm") and name != "loop"]
