"""What is particular to the bptt engine: cost linear in T, only the gradients asked for, CUDA,
and clear errors for bad arguments. (Its agreement with the specification, gradchecks and the
recurrence's invariants are in test_engines.py, with every other engine's.)
"""
from __future__ import annotations

import pytest
import torch

from engine_cases import CONFIGS, lstm_case, run_lstm, run_simple, simple_case
from lstmkit.engines import bptt
from lstmkit.engines.contract import GRUWeights, LSTMState, RNNWeights, Steps
from parity import assert_close


def test_only_requested_gradients():
    """needs_input_grad is respected: inputs that do not require grad get nothing computed."""
    case = lstm_case(seed=4, P=2, peephole=True, ln=True)
    w_hh = case.weights.w_hh.clone().requires_grad_(True)
    y, *_ = bptt.lstm(case.xg, case.state, case.weights._replace(w_hh=w_hh), case.masks, case.steps)
    (g,) = torch.autograd.grad(y.sum(), [w_hh])
    assert g.shape == w_hh.shape and torch.isfinite(g).all()
    with torch.no_grad():
        y, h_n, *_ = bptt.lstm(case.xg, case.state, case.weights._replace(w_hh=w_hh), case.masks, case.steps)
    assert y.grad_fn is None and h_n.grad_fn is None


# ---------------------------------------------------------------------------------------------
# Linear cost in T: the graph is one node whatever T, and saved memory grows like T.

def saved_numel(run):
    """Total elements autograd saves for backward during run()."""
    total = [0]

    def pack(t):
        total[0] += t.numel()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    return total[0], out


def graph_size(tensor):
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(n for n, _ in node.next_functions)
    return len(seen)


@pytest.mark.parametrize("kind", ["lstm_everything", "gru", "rnn"])
def test_backward_is_linear_in_steps(kind):
    sizes, nodes = {}, {}
    for steps in (50, 100, 200):
        if kind == "lstm_everything":
            case = lstm_case(T=steps, H=4, **{**CONFIGS["everything"], "packed": False}).with_leaves()
            run = lambda: bptt.lstm(case.xg, case.state, case.weights, case.masks, case.steps)  # noqa: E731
        else:
            c = simple_case(kind, T=steps, H=4)
            xg, h0 = c.xg.requires_grad_(True), c.h0.requires_grad_(True)
            weights = type(c.weights)(*(w.requires_grad_(True) if isinstance(w, torch.Tensor) else w
                                        for w in c.weights))
            run = lambda: (bptt.gru if kind == "gru" else bptt.rnn)(xg, h0, weights, c.steps)  # noqa: E731
        sizes[steps], out = saved_numel(run)
        nodes[steps] = graph_size(out[0])
    assert nodes[50] == nodes[100] == nodes[200], f"graph grows with T: {nodes}"
    # saved elements = a·T + b: the increments from 50→100 and 100→200 are in ratio 1:2
    assert sizes[200] - sizes[100] == 2 * (sizes[100] - sizes[50]), f"saved memory not linear in T: {sizes}"
    assert sizes[100] - sizes[50] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("config", ["plain", "everything", "everything_coupled"])
def test_cuda_matches_cpu(config):
    case = lstm_case(seed=31, **CONFIGS[config])
    want, want_grads = run_lstm(bptt, case)
    got, got_grads = run_lstm(bptt, case.to(device="cuda"))
    for k, (a, b) in enumerate(zip(got, want)):
        assert_close(a.cpu(), b, 1e-9, f"result {k}")
    for name in want_grads:
        assert_close(got_grads[name].cpu(), want_grads[name], 1e-9, f"gradient of {name}")
    for kind in ("gru", "rnn"):
        c = simple_case(kind, packed=True, nonlinearity="relu", seed=32)
        moved = c._replace(xg=c.xg.cuda(), h0=c.h0.cuda(),
                           weights=type(c.weights)(*(w.cuda() if isinstance(w, torch.Tensor) else w
                                                     for w in c.weights)))
        (want, want_grads), (got, got_grads) = run_simple(bptt, c), run_simple(bptt, moved)
        for k, (a, b) in enumerate(zip(got, want)):
            assert_close(a.cpu(), b, 1e-9, f"{kind} result {k}")
        for name in want_grads:
            assert_close(got_grads[name].cpu(), want_grads[name], 1e-9, f"{kind} gradient of {name}")


def test_bad_arguments_raise_clear_errors():
    case = lstm_case(B=4)
    with pytest.raises(ValueError, match="batch_sizes"):
        bptt.lstm(case.xg, case.state, case.weights, case.masks, Steps((4, 4)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        bptt.lstm(case.xg, LSTMState(case.state.h[:2], case.state.c), case.weights)
    with pytest.raises(TypeError, match="float64"):
        bptt.lstm(case.xg, LSTMState(case.state.h.float(), case.state.c), case.weights)
    with pytest.raises(ValueError, match="nonlinearity"):
        bptt.rnn(torch.zeros(2, 1, 3), torch.zeros(1, 3), RNNWeights(torch.zeros(3, 3), "sigmoid"))
    with pytest.raises(ValueError, match="at least one step"):
        bptt.rnn(torch.zeros(0, 1, 3), torch.zeros(1, 3), RNNWeights(torch.zeros(3, 3)))
    with pytest.raises(ValueError, match="3·H"):
        bptt.gru(torch.zeros(2, 1, 5), torch.zeros(1, 3), GRUWeights(torch.zeros(9, 3)))
