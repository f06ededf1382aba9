"""Batches through torch's DataLoader: variable-length token sequences bucketed by length, and
rows of fixed-size tensors. Under torchrun each rank gets its own share of the training batches.

A text batch is padded on the right only up to its longest sequence, with the lengths, so the
model can pack it (torch.nn.utils.rnn.pack_padded_sequence) and never read padding. Training
batches group sequences of similar length (`LengthBuckets`), so little padding is built at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from lstmkit.training import distributed
from lstmkit.training.config import epoch_generator


@dataclass
class TextBatch:
    ids: torch.Tensor             # (B, T) int64, `pad` after each sequence's end
    lengths: torch.Tensor         # (B,) int64, each >= 1
    labels: torch.Tensor | None   # (B,) int64 class indices, None when predicting
    index: torch.Tensor           # (B,) int64 position of each row in the source list

    def __len__(self) -> int:
        return len(self.lengths)


def truncate(ids: list[int], max_len: int | None, pad: int = 0) -> list[int]:
    """At most max_len ids; an empty sequence becomes one padding step (packing needs length >= 1)."""
    if max_len is not None and len(ids) > max_len:
        ids = ids[:max_len]
    return ids if ids else [pad]


def collate(sequences: list[list[int]], labels: list[int] | None, index: list[int],
            pad: int = 0) -> TextBatch:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)  # (B,)
    ids = torch.full((len(sequences), int(lengths.max())), pad, dtype=torch.int64)  # (B, T)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.int64)
    label_tensor = torch.tensor(labels, dtype=torch.int64) if labels is not None else None  # (B,)
    return TextBatch(ids, lengths, label_tensor, torch.tensor(index, dtype=torch.int64))


class _Sequences(Dataset):
    """Token sequences (and labels) by position; a batch of positions collates to a TextBatch."""

    def __init__(self, sequences: list[list[int]], labels: list[int] | None, pad: int):
        self.sequences, self.labels, self.pad = sequences, labels, pad

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitems__(self, index: list[int]) -> TextBatch:
        labels = [self.labels[i] for i in index] if self.labels is not None else None
        return collate([self.sequences[i] for i in index], labels, index, self.pad)


class LengthBuckets(Sampler[list[int]]):
    """Batches of positions, fixed when made.

    shuffle=False: sorted by length (fast, deterministic evaluation; `index` restores the order).
    shuffle=True: a random permutation cut into pools of batch_size * bucket_factor, each pool
    sorted by length and cut into batches, then the batch order shuffled: batches of similar
    lengths, yet a different mix every epoch (deterministic given `generator`).
    With world_size > 1 this rank keeps every world_size-th batch, the same number on every rank.
    """

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, bucket_factor: int = 50,
                 rank: int = 0, world_size: int = 1):
        n = len(lengths)
        if shuffle:
            order = torch.randperm(n, generator=generator).tolist()
            pool = batch_size * max(bucket_factor, 1)
            chunks = []
            for start in range(0, n, pool):
                members = sorted(order[start:start + pool], key=lambda i: lengths[i])
                chunks += [members[i:i + batch_size] for i in range(0, len(members), batch_size)]
            chunk_order = torch.randperm(len(chunks), generator=generator).tolist()
            chunks = [chunks[i] for i in chunk_order]
        else:
            order = sorted(range(n), key=lambda i: lengths[i])
            chunks = [order[i:i + batch_size] for i in range(0, n, batch_size)]
        self.sharded = world_size > 1
        if self.sharded:
            chunks = chunks[rank:len(chunks) - len(chunks) % world_size:world_size]
        self.batches = chunks

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _as_is(batch):
    return batch


def _loader(dataset: Dataset, **options) -> DataLoader:
    """A DataLoader in this process. Its own generator: iterating a DataLoader draws a seed for
    worker processes, which would otherwise come from (and shift) the global RNG that dropout uses."""
    return DataLoader(dataset, collate_fn=_as_is, generator=torch.Generator(), **options)


def text_batches(sequences: list[list[int]], labels: list[int] | None, batch_size: int, *,
                 seed: int | None = None, epoch: int = 0, pad: int = 0,
                 bucket_factor: int = 50, shard: bool = False) -> DataLoader:
    """Batches of token sequences: sorted by length (seed None), or shuffled in length buckets as
    a function of (seed, epoch). shard=True: this rank's share under torchrun (training)."""
    info = distributed.from_environment() if shard else distributed.ProcessInfo()
    generator = epoch_generator(seed, epoch) if seed is not None else None
    sampler = LengthBuckets([len(s) for s in sequences], batch_size, shuffle=seed is not None,
                            generator=generator, bucket_factor=bucket_factor, rank=info.rank,
                            world_size=info.world_size)
    return _loader(_Sequences(sequences, labels, pad), batch_sampler=sampler)


class _Rows(Dataset):
    """Tensors with one row per example; a batch of positions is each tensor's rows."""

    def __init__(self, *tensors: torch.Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitems__(self, index: list[int]) -> tuple[torch.Tensor, ...]:
        rows = torch.tensor(index, dtype=torch.int64)
        return tuple(t[rows] for t in self.tensors)


def tensor_batches(tensors: tuple[torch.Tensor, ...], batch_size: int, *, seed: int | None = None,
                   epoch: int = 0, shard: bool = False) -> DataLoader:
    """Mini-batches of rows: in order (seed None) or shuffled as a function of (seed, epoch).
    shard=True: under torchrun a DistributedSampler gives this rank its share (training)."""
    dataset = _Rows(*tensors)
    info = distributed.from_environment() if shard else distributed.ProcessInfo()
    if info.enabled:
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                     shuffle=seed is not None, seed=seed or 0, drop_last=True)
        sampler.set_epoch(epoch)
    elif seed is not None:
        sampler = RandomSampler(dataset, generator=epoch_generator(seed, epoch))
    else:
        sampler = SequentialSampler(dataset)
    return _loader(dataset, batch_size=batch_size, sampler=sampler)
