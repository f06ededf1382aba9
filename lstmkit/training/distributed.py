"""Several processes with PyTorch's DistributedDataParallel, started by `torchrun`.

    torchrun --nproc_per_node 2 -m lstmkit train sentiment --train ... --out runs/x

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT; `init()` joins the process group
(gloo on CPU, NCCL on CUDA). The training loop (lstmkit.training.fit) then
- wraps the model in DDP, so gradients are averaged over processes after every backward;
- gives each rank its share of the training batches. Batches from lstmkit.data.batching come
  sharded already (a DistributedSampler, or every world_size-th batch of the length buckets);
  any other iterable is dealt round-robin here: batch k goes to rank k % world_size, and a final
  group with fewer than world_size batches is dropped, so every rank takes the same number of
  steps (DDP hangs otherwise). Every rank builds the same batch sequence from the same seed, which
  is why tasks make their batch order a function of (seed, epoch) only;
- evaluates the full validation set on every rank (same weights -> same metrics -> the same early
  stopping decision everywhere, with no communication), and lets rank 0 alone write checkpoints
  and metrics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_environment() -> ProcessInfo:
    """The process's place in a torchrun job (rank 0 of 1 when not started by torchrun)."""
    return ProcessInfo(rank=int(os.environ.get("RANK", 0)),
                       world_size=int(os.environ.get("WORLD_SIZE", 1)),
                       local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def init(device: torch.device) -> ProcessInfo:
    """Join the torchrun process group if there is one (idempotent); returns this process's place."""
    info = from_environment()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info


def shard(batches: Iterable, info: ProcessInfo) -> Iterator:
    """This rank's share of `batches`: every world_size-th, dropping an incomplete last group."""
    if not info.enabled:
        yield from batches
        return
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == info.world_size:
            yield group[info.rank]
            group = []


def is_sharded(batches) -> bool:
    """True for a DataLoader whose sampler already deals this rank its share."""
    from torch.utils.data.distributed import DistributedSampler

    sampler = getattr(batches, "batch_sampler", None)
    return isinstance(getattr(batches, "sampler", None), DistributedSampler) or \
        bool(getattr(sampler, "sharded", False))


def any_rank(flag: bool, info: ProcessInfo, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any (so all ranks stop at the same step)."""
    if not (info.enabled and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)  # NCCL reduces CUDA tensors only
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier(info: ProcessInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
