"""Predicting sine waves with two stacked LSTM cells, written the way PyTorch programs usually are.

Like pytorch/examples' time-sequence program: each wave is fed one value at a time through
``nn.LSTMCell``s, trained with L-BFGS, then asked to continue the waves on its own. It ends as many
programs do, saving the whole model and loading it back with torch's safe loader, allow-listing the
classes it uses. This file never mentions lstmkit: tests/test_deploy.py runs it unmodified, as it is
and inside ``lstmkit.swap_into_torch()``, and checks both reach the same loss.

    python examples/sine_prediction.py --steps 5
"""
import argparse
import math
import os
import tempfile

import torch
import torch.nn as nn


def sine_waves(count=60, length=400, period=20.0, seed=0):
    """(count, length) waves with random phases, in float64."""
    generator = torch.Generator().manual_seed(seed)
    shifts = torch.randint(-4 * int(period), 4 * int(period), (count, 1), generator=generator)
    t = torch.arange(length).unsqueeze(0) + shifts
    return torch.sin(t.double() / period)


class WaveModel(nn.Module):
    def __init__(self, hidden=51):
        super().__init__()
        self.cell1 = nn.LSTMCell(1, hidden)
        self.cell2 = nn.LSTMCell(hidden, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, waves, future=0):
        batch = waves.size(0)
        h1 = c1 = waves.new_zeros(batch, self.cell1.hidden_size)
        h2 = c2 = waves.new_zeros(batch, self.cell2.hidden_size)
        outputs = []
        value = None
        for value in waves.split(1, dim=1):
            h1, c1 = self.cell1(value, (h1, c1))
            h2, c2 = self.cell2(h1, (h2, c2))
            value = self.out(h2)
            outputs.append(value)
        for _ in range(future):            # continue on its own predictions
            h1, c1 = self.cell1(value, (h1, c1))
            h2, c2 = self.cell2(h1, (h2, c2))
            value = self.out(h2)
            outputs.append(value)
        return torch.cat(outputs, dim=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="L-BFGS steps")
    parser.add_argument("--hidden", type=int, default=51)
    parser.add_argument("--length", type=int, default=400)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    waves = sine_waves(length=args.length)
    inputs, targets = waves[3:, :-1], waves[3:, 1:]
    test_inputs, test_targets = waves[:3, :-1], waves[:3, 1:]
    model = WaveModel(args.hidden).double()
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.8)
    losses = []
    for step in range(args.steps):
        def closure():
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            return loss
        optimizer.step(closure)
        with torch.no_grad():
            test_loss = loss_fn(model(test_inputs, future=50)[:, :-50], test_targets).item()
        losses.append(test_loss)
        print(f"step {step}: test loss {test_loss:.6f}")

    # save the whole model, then load it the safe way, naming the classes it is made of
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.pt")
        torch.save(model, path)
        allowed = [WaveModel, torch.nn.modules.rnn.LSTMCell, torch.nn.modules.linear.Linear]
        with torch.serialization.safe_globals(allowed):
            loaded = torch.load(path)
    with torch.no_grad():
        again = loss_fn(loaded(test_inputs, future=50)[:, :-50], test_targets).item()
    if not math.isclose(again, losses[-1], rel_tol=0, abs_tol=1e-12):
        raise SystemExit(f"the loaded model predicts differently: {again} vs {losses[-1]}")
    print(f"saved and loaded: test loss {again:.6f}")
    return losses


if __name__ == "__main__":
    main()
