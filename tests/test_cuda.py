"""CUDA readiness: every engine that claims the GPU, the task commands with --device cuda, mixed
precision, checkpoints moved GPU -> CPU -> GPU, ``LSTM.step`` and ``lstmkit.trace`` on the GPU.

Each test runs on ``DEVICE``: "cuda" (skipped with a reason where there is no GPU; on one, run by
benchmarks/gpu_check.sh), or whatever LSTMKIT_TEST_DEVICE names. ``LSTMKIT_TEST_DEVICE=cpu`` runs
them all on the CPU, which checks the tests themselves (gpu_check.sh --cpu-dry-run does this).
Results on the device are compared with the same model on the CPU; TF32 is off so that float32
means float32 on both.
"""
from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit import training as train
from lstmkit.training.checkpoint import load_checkpoint
from lstmkit import engines
from lstmkit.cli import main
from parity import run_with_grads

DEVICE = torch.device(os.environ.get("LSTMKIT_TEST_DEVICE", "cuda"))

pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(),
    reason="no CUDA GPU here: these run on one (benchmarks/gpu_check.sh); LSTMKIT_TEST_DEVICE=cpu checks them on the CPU")


@pytest.fixture(autouse=True)
def _exact_float32():
    """No TF32 in cuDNN or cuBLAS: float32 on the GPU is compared with float32 on the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def on_device(module: torch.nn.Module) -> torch.nn.Module:
    return module.to(DEVICE)


def assert_close(got: torch.Tensor, want: torch.Tensor, tol: float, what: str) -> None:
    assert got is not None and want is not None, f"{what}: a gradient is missing"
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    scale = max(1.0, want.abs().max().item())
    err = (got - want).abs().max().item()
    assert err <= tol * scale, f"{what}: max difference {err:.2e} > {tol:.0e} (scale {scale:.2g})"


def assert_same_on_device(module_cpu, module_dev, *inputs, tol: float = 1e-4) -> None:
    """Outputs, states and every gradient of the device module equal the CPU module's."""
    want = run_with_grads(module_cpu, *inputs)
    got = run_with_grads(module_dev, *[None if v is None else _to_device(v) for v in inputs])
    for k, (a, b) in enumerate(zip(got["outputs"], want["outputs"])):
        assert_close(a, b, tol, f"output {k}")
    for k, (a, b) in enumerate(zip(got["input_grads"], want["input_grads"])):
        assert_close(a, b, tol, f"gradient of input {k}")
    for name, grad in want["param_grads"].items():
        assert_close(got["param_grads"][name], grad, tol, f"gradient of {name}")


def _to_device(value):
    if isinstance(value, torch.Tensor):
        return value.to(DEVICE)
    return tuple(_to_device(v) for v in value)


MODULES = {
    "lstm": lambda: lstmkit.LSTM(5, 16, num_layers=2, bidirectional=True),
    "lstm_proj": lambda: lstmkit.LSTM(5, 16, proj_size=8, batch_first=True),
    "lstm_variants": lambda: lstmkit.LSTM(5, 16, peephole=True, layer_norm=True, coupled_gates=True),
    "gru": lambda: lstmkit.GRU(5, 16, num_layers=2, bidirectional=True),
    "rnn_relu": lambda: lstmkit.RNN(5, 16, nonlinearity="relu"),
}


def engines_claiming(module) -> list[str]:
    """The registered engines that say they can run ``module`` (already on the device) as it is now."""
    spec = module.layer_spec()
    return [name for name, engine in engines.ENGINES.items() if engine.why_not(spec) is None]


@pytest.mark.parametrize("kind", list(MODULES))
def test_every_engine_claiming_the_device_matches_the_cpu(kind):
    torch.manual_seed(0)
    specification = MODULES[kind]()
    specification.backend = "loop"
    x = torch.randn(2, 7, 5) if kind == "lstm_proj" else torch.randn(7, 2, 5)
    claimed = engines_claiming(on_device(MODULES[kind]()))
    assert {"loop", "bptt"} <= set(claimed), f"the loop and bptt engines serve every device: {claimed}"
    for name in claimed:
        module = on_device(MODULES[kind]())
        module.load_state_dict(specification.state_dict())
        module.backend = name
        assert_same_on_device(specification, module, x)
        assert module.last_backend == name


@pytest.mark.parametrize("kind", ["lstm", "lstm_variants", "gru"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_every_engine_close_to_float32(kind, dtype):
    """Under autocast the input projection runs in low precision and the recurrent weights stay
    float32: every engine must take that mix, and land near the float32 result."""
    torch.manual_seed(0)
    x = torch.randn(7, 2, 5, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=dtype):
        claimed = engines_claiming(on_device(MODULES[kind]()))
    for name in claimed:
        torch.manual_seed(0)
        module = on_device(MODULES[kind]())
        module.backend = name
        want, _ = module(x)
        with torch.autocast(DEVICE.type, dtype=dtype):
            got, _ = module(x)
        got.float().square().mean().backward()
        assert_close(got.float(), want, 5e-2, f"{name} {dtype} output")
        for pname, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} {dtype}: gradient of {pname}"


def test_trainer_mixed_precision_learns():
    """The training loop's AMP (float16 + GradScaler, CUDA only) on a small LSTM regression."""
    if DEVICE.type != "cuda":
        pytest.skip("the trainer's mixed precision is CUDA only")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 9, 3, generator=gen)                      # (N, T, I)
    y = x.sum(dim=(1, 2))                                         # (N,)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstmkit.LSTM(3, 16, batch_first=True)
            self.head = torch.nn.Linear(16, 1)

        def forward(self, inputs):
            out, _ = self.lstm(inputs)
            return self.head(out[:, -1]).squeeze(-1)

    def step(model, batch, state):
        inputs, targets = batch
        return train.StepOutput(torch.nn.functional.mse_loss(model(inputs).float(), targets), size=len(targets))

    torch.manual_seed(0)
    spec = train.TrainSpec(task="toy", model=Model(), model_config={}, step=step,
                           train_batches=lambda epoch: [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)])
    result = train.fit(spec, train.TrainConfig(epochs=8, lr=0.02, progress=False, device=str(DEVICE), amp=True))
    losses = [h["train_loss"] for h in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] / 2, losses


def test_step_on_the_device_equals_the_forward_pass():
    torch.manual_seed(0)
    model = on_device(lstmkit.LSTM(5, 16, num_layers=2)).eval()
    x = torch.randn(9, 3, 5, device=DEVICE)
    with torch.no_grad():
        y, (h, c) = model(x)
        state, steps = None, []
        for x_t in x.unbind(0):
            y_t, state = model.step(x_t, state)
            steps.append(y_t)
    assert_close(torch.stack(steps), y, 1e-5, "stepped outputs")
    assert_close(state[0], h, 1e-5, "h")
    assert_close(state[1], c, 1e-5, "c")


def test_trace_on_the_device_records_what_the_cpu_records():
    torch.manual_seed(0)
    model = lstmkit.LSTM(5, 16, num_layers=2, batch_first=True)
    x = torch.randn(3, 9, 5)
    with lstmkit.trace(model) as t_cpu:
        model(x)
    model = on_device(model)
    with lstmkit.trace(model) as t_dev:
        y, _ = model(x.to(DEVICE))
    for layer in (0, 1):
        want, got = t_cpu.get(layer=layer), t_dev.get(layer=layer)
        for name in "ifgoch":
            assert getattr(got, name).device.type == DEVICE.type
            assert_close(getattr(got, name), getattr(want, name), 1e-5, f"layer {layer} {name}")
    assert_close(t_dev.get(layer=1).h, y, 1e-6, "traced h")


# ---- the task commands with --device ------------------------------------------------------------

def _text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("abcd" * 300)
    return path


def test_language_model_trains_on_the_device_generates_on_the_cpu_and_resumes_on_the_device(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "lm", "--text", str(_text(tmp_path)), "--level", "char", "--hidden-size", "32",
            "--embed-size", "8", "--batch-size", "4", "--bptt", "16", "--lr", "0.03", "--out", str(out),
            "--no-progress", "--device", str(DEVICE)]
    assert main([*argv, "--epochs", "3"]) == 0
    summary = json.loads((out / "lm_metrics.json").read_text())
    assert summary["best_valid_loss"] < 0.1 * math.log(4)
    capsys.readouterr()
    assert main(["generate", "--model", str(out), "--prime", "ab", "--length", "10", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "abcdabcdabcd\n"
    assert main([*argv, "--epochs", "4", "--resume"]) == 0               # trainer state back onto the device
    last = load_checkpoint(out / "last", task=None, trainer=True)
    assert last.trainer_json["run"]["epochs_done"] == 4


def _fasttext(path, n, seed):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        good = i % 2 == 0
        words = rng.choices(["the", "a", "book", "it", "was"], k=3)
        words.insert(rng.randrange(4), rng.choice(["good", "great", "love"] if good else ["bad", "awful", "hate"]))
        lines.append(f"__label__{2 if good else 1} {' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sentiment_trains_on_the_device_and_predicts_on_both(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "sentiment", "--train", str(_fasttext(tmp_path / "train.txt", 120, 1)),
            "--test", str(_fasttext(tmp_path / "test.txt", 40, 2)), "--out", str(out), "--epochs", "4",
            "--batch-size", "16", "--embedding-dim", "16", "--hidden-size", "16", "--lr", "0.03",
            "--min-freq", "1", "--no-progress", "--device", str(DEVICE)]
    assert main(argv) == 0
    for device in ("cpu", str(DEVICE)):
        capsys.readouterr()
        assert main(["predict", "sentiment", "--model", str(out), "--device", device, "--json", "i love it"]) == 0
        assert json.loads(capsys.readouterr().out)["label"] == "2"          # fastText's __label__2: positive


def test_forecast_trains_on_the_device_and_predicts(tmp_path, capsys):
    months = np.arange(120)
    sales = 100 + 0.5 * months + 20 * np.sin(2 * np.pi * months / 12)
    csv = tmp_path / "series.csv"
    csv.write_text("month,sales\n" + "".join(f"m{i},{v:.4f}\n" for i, v in enumerate(sales)))
    out = tmp_path / "run"
    assert main(["train", "forecast", "--csv", str(csv), "--target", "sales", "--window", "24", "--horizon", "6",
                 "--season", "12", "--epochs", "3", "--hidden-size", "8", "--out", str(out), "--no-progress",
                 "--device", str(DEVICE)]) == 0
    capsys.readouterr()
    assert main(["predict", "forecast", "--model", str(out), "--csv", str(csv)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 7


def test_sequential_mnist_trains_on_the_device(tmp_path):
    rng = np.random.default_rng(0)

    def digits(count):
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 4:, 2 * k + 4: 2 * k + 7] = 255
        return images, labels.astype(np.uint8)

    (x_train, y_train), (x_test, y_test) = digits(300), digits(60)
    npz = tmp_path / "digits.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    out = tmp_path / "run"
    assert main(["train", "seqmnist", "--npz", str(npz), "--mode", "rows", "--hidden-size", "24", "--epochs", "2",
                 "--valid-size", "50", "--out", str(out), "--no-progress", "--device", str(DEVICE)]) == 0
    assert (out / "best" / "model.safetensors").is_file()
