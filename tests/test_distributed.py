"""DDP under torchrun: two gloo CPU processes train the same model as one process on the union
of their batches (DDP averages the gradients of equal-size batches = the gradient of the union)."""
import subprocess
import sys
import textwrap

import torch

from lstmkit import training as train
from lstmkit.training.checkpoint import load_checkpoint

SCRIPT = textwrap.dedent("""
    import sys, torch
    from torch import nn
    from lstmkit import training as train
    from lstmkit.training import distributed
    from safetensors.torch import save_file

    def batches(epoch):  # the same sequence on every rank: a function of (seed, epoch) only
        g = train.epoch_generator(0, epoch)
        x = torch.randn(48, 3, generator=g)                                   # (N, 3)
        y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3                          # (N,)
        return [(x[i:i + 6], y[i:i + 6]) for i in range(0, 48, 6)]           # 8 batches of 6

    def merged(epoch):  # what two ranks see together, as one batch per step
        b = batches(epoch)
        return [(torch.cat([b[k][0], b[k + 1][0]]), torch.cat([b[k][1], b[k + 1][1]]))
                for k in range(0, len(b), 2)]

    def step(model, batch, state):
        x, y = batch
        return nn.functional.mse_loss(model(x).squeeze(-1), y)

    def run(out, source):
        config = train.TrainConfig(out=out, epochs=3, lr=0.05, optimizer="sgd", clip=1.0,
                                   progress=False, device="cpu")
        train.setup(config)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        result = train.fit(train.TrainSpec(task="toy", model=model, model_config={},
                                           train_batches=source, step=step), config)
        return result.model

    out, mode = sys.argv[1], sys.argv[2]
    if mode == "ddp":
        model = run(out + "/ddp", batches)
        rank = distributed.from_environment().rank
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.safetensors")
        distributed.shutdown()
    else:
        run(out + "/single", merged)
""")


def test_two_gloo_processes_train_the_same_model_as_one(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    env_threads = {"OMP_NUM_THREADS": "1"}
    import os
    env = {**os.environ, **env_threads}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(script), str(tmp_path), "ddp"],
                         capture_output=True, text=True, timeout=280, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, str(script), str(tmp_path), "single"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert single.returncode == 0, single.stderr[-3000:]

    from safetensors.torch import load_file
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    reference = load_checkpoint(tmp_path / "single" / "last", task="toy").state_dict
    written = load_checkpoint(tmp_path / "ddp" / "last", task="toy").state_dict  # by rank 0 only
    for name, expected in reference.items():
        assert torch.equal(rank0[name], rank1[name]), name         # the ranks agree exactly
        torch.testing.assert_close(rank0[name], expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(written[name], rank0[name])
    assert not (tmp_path / "ddp" / "last" / "trainer.json").read_text() == ""


def test_shard_deals_batches_round_robin_and_drops_the_ragged_end():
    from lstmkit.training import distributed
    info = lambda r: distributed.ProcessInfo(rank=r, world_size=3)  # noqa: E731
    assert [list(distributed.shard(range(8), info(r))) for r in range(3)] == [[0, 3], [1, 4], [2, 5]]
    assert list(distributed.shard(range(4), distributed.ProcessInfo())) == [0, 1, 2, 3]
    assert train.select_device("cpu").type == "cpu"
