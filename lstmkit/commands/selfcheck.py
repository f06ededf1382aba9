"""`lstmkit selfcheck`: versions, engines, and a parity check against torch.nn.LSTM on random weights."""
from __future__ import annotations

import platform


def register(subparsers) -> None:
    p = subparsers.add_parser("selfcheck", help="check this installation against torch.nn.LSTM",
                              description="Print versions and available engines, then run every engine on "
                                          "random weights beside torch.nn.LSTM and compare outputs and gradients.")
    p.set_defaults(func=run)


def parity(backend: str) -> float:
    """Largest difference to torch.nn.LSTM (float64) in outputs, states and all gradients."""
    import torch
    from torch import nn

    import lstmkit

    torch.manual_seed(0)
    theirs = nn.LSTM(5, 8, num_layers=2, bidirectional=True, dtype=torch.float64)
    ours = lstmkit.LSTM(5, 8, num_layers=2, bidirectional=True, dtype=torch.float64, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(12, 3, 5, dtype=torch.float64)
    worst = 0.0
    results = []
    for module in (theirs, ours):
        xi = x.clone().requires_grad_(True)
        y, (h, c) = module(xi)
        (y.sum() + h.square().sum() + c.sin().sum()).backward()
        results.append([y, h, c, xi.grad] + [p.grad for p in module.parameters()])
    for a, b in zip(*results):
        worst = max(worst, (a - b).abs().max().item())
    return worst


def run(args) -> int:
    import numpy
    import torch

    import lstmkit
    from lstmkit import engines

    print(f"lstmkit {lstmkit.__version__}  torch {torch.__version__}  numpy {numpy.__version__}  "
          f"python {platform.python_version()}  threads {torch.get_num_threads()}  "
          f"cuda {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    ok = True
    for name, status in engines.available().items():
        line = f"  {name:<10} {status}"
        if status == "available":
            worst = parity(name)
            passed = worst < 1e-10
            ok &= passed
            line += f"; vs torch.nn.LSTM (float64, outputs and gradients): max diff {worst:.1e} " \
                    f"{'ok' if passed else 'FAILED'}"
        print(line)
    print("all engines agree with torch.nn.LSTM" if ok else "PARITY FAILED: please report this")
    return 0 if ok else 1
