"""Checkpoints: round trip, refusal of other tasks/versions, atomic replacement, no code execution."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from lstmkit.errors import UsageError
from lstmkit.training import checkpoint as ckpt
from lstmkit.training import resume


def save_toy(path, task="toy", value=1.0, **kw):
    return ckpt.save_checkpoint(path, task=task, model_config={"hidden": 4},
                                state_dict={"w": torch.full((2, 3), value)}, **kw)


def test_round_trip_with_extras_and_info(tmp_path):
    model = nn.LSTM(3, 4, num_layers=2)
    ckpt.save_checkpoint(tmp_path / "c", task="toy", model_config={"hidden": 4},
                         state_dict=model.state_dict(), extras={"vocab": ["<pad>", "<unk>", "é"]},
                         info={"epoch": 3})
    loaded = ckpt.load_checkpoint(tmp_path / "c", task="toy")
    assert loaded.model_config == {"hidden": 4} and loaded.info == {"epoch": 3}
    assert loaded.extras["vocab"] == ["<pad>", "<unk>", "é"]
    fresh = nn.LSTM(3, 4, num_layers=2)
    fresh.load_state_dict(loaded.state_dict)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    assert sorted(os.listdir(tmp_path / "c")) == ["config.json", "model.safetensors", "vocab.json"]


def test_tied_weights_are_saved(tmp_path):
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5)
    head.weight = emb.weight  # shared storage: safetensors alone would refuse it
    sd = {**{f"emb.{k}": v for k, v in emb.state_dict().items()},
          **{f"head.{k}": v for k, v in head.state_dict().items()}}
    ckpt.save_checkpoint(tmp_path / "c", task="toy", model_config={}, state_dict=sd)
    assert torch.equal(ckpt.load_checkpoint(tmp_path / "c", task="toy").state_dict["head.weight"],
                       emb.weight)


def test_refuses_other_task_and_format_version(tmp_path):
    save_toy(tmp_path / "c", task="lm")
    with pytest.raises(UsageError, match="task 'lm', not 'sentiment'"):
        ckpt.load_checkpoint(tmp_path / "c", task="sentiment")
    config_file = tmp_path / "c" / "config.json"
    config = json.loads(config_file.read_text())
    config["format_version"] = 99
    config_file.write_text(json.dumps(config))
    with pytest.raises(UsageError, match="format version 99"):
        ckpt.load_checkpoint(tmp_path / "c", task="lm")
    config_file.write_text("{not json")
    with pytest.raises(UsageError, match="config.json"):
        ckpt.load_checkpoint(tmp_path / "c", task="lm")
    with pytest.raises(UsageError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing", task="lm")


def test_replacement_keeps_a_readable_checkpoint_at_every_stage(tmp_path):
    save_toy(tmp_path / "c", value=1.0)
    save_toy(tmp_path / "c", value=2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert ckpt.load_checkpoint(tmp_path / "c", task="toy").state_dict["w"][0, 0] == 2.0
    # Killed between "move old aside" and "move new in": NAME.old is used.
    os.replace(tmp_path / "c", tmp_path / "c.old")
    assert ckpt.load_checkpoint(tmp_path / "c", task="toy").state_dict["w"][0, 0] == 2.0
    # Killed while writing NAME.tmp: the half-written folder is ignored, then cleaned by the next save.
    (tmp_path / "c.tmp").mkdir()
    (tmp_path / "c.tmp" / "model.safetensors").write_bytes(b"partial")
    assert ckpt.load_checkpoint(tmp_path / "c", task="toy").state_dict["w"][0, 0] == 2.0
    save_toy(tmp_path / "c", value=3.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_kill_9_during_saves_leaves_last_good_checkpoint(tmp_path):
    # A child process saves bigger and bigger checkpoints in a loop; we SIGKILL it mid-way.
    script = textwrap.dedent(f"""
        import torch, sys
        from lstmkit.training import checkpoint as ckpt
        i = 0
        while True:
            i += 1
            ckpt.save_checkpoint({str(tmp_path / 'c')!r}, task="toy", model_config={{"i": i}},
                                 state_dict={{"w": torch.full((300, 300), float(i))}})
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for _ in range(5):
        proc.stdout.readline()
    proc.kill()
    proc.wait()
    loaded = ckpt.load_checkpoint(tmp_path / "c", task="toy")
    i = loaded.model_config["i"]
    assert i >= 5 and torch.equal(loaded.state_dict["w"], torch.full((300, 300), float(i)))


def test_optimizer_and_rng_state_round_trip_without_pickle():
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, meta = resume.optimizer_state_to_parts(opt)
    meta = json.loads(json.dumps(meta))  # must survive JSON
    other = torch.optim.Adam(model.parameters(), lr=0.5)
    resume.optimizer_state_from_parts(other, tensors, meta)
    assert other.param_groups[0]["lr"] == 0.1 and other.param_groups[0]["betas"] == (0.9, 0.999)
    for a, b in zip(opt.state.values(), other.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])

    rng_tensors, rng_meta = resume.rng_state_to_parts()
    expected = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    resume.rng_state_from_parts(rng_tensors, json.loads(json.dumps(rng_meta)))
    again = (torch.rand(3), __import__("numpy").random.rand(), __import__("random").random())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]
