"""Variable-length batches of token ids: padded on the right, with lengths for packing.

The tutorial cut every review to 200 tokens and padded on the left, so the LSTM read up to 199
padding steps before the first word. Here a batch is padded on the right only up to its longest
sequence, and the model packs it (torch.nn.utils.rnn.pack_padded_sequence) so padding is never
read. Training batches group sequences of similar length ("buckets") so little padding is built.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lstmkit.data.text import PAD_INDEX


@dataclass
class TextBatch:
    ids: torch.Tensor             # (B, T) int64, PAD_INDEX after each sequence's end
    lengths: torch.Tensor         # (B,) int64, each >= 1
    labels: torch.Tensor | None   # (B,) int64 class indices, None when predicting
    index: torch.Tensor           # (B,) int64 position of each row in the source list

    def __len__(self) -> int:
        return len(self.lengths)


def truncate(ids: list[int], max_len: int | None) -> list[int]:
    """At most max_len ids; an empty sequence becomes one padding step (packing needs length >= 1)."""
    if max_len is not None and len(ids) > max_len:
        ids = ids[:max_len]
    return ids if ids else [PAD_INDEX]


def collate(sequences: list[list[int]], labels: list[int] | None, index: list[int]) -> TextBatch:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)  # (B,)
    ids = torch.full((len(sequences), int(lengths.max())), PAD_INDEX, dtype=torch.int64)  # (B, T)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.int64)
    label_tensor = torch.tensor(labels, dtype=torch.int64) if labels is not None else None  # (B,)
    return TextBatch(ids, lengths, label_tensor, torch.tensor(index, dtype=torch.int64))


def make_batches(sequences: list[list[int]], labels: list[int] | None, batch_size: int,
                 shuffle: bool = False, generator: torch.Generator | None = None,
                 bucket_factor: int = 50) -> list[TextBatch]:
    """Batches over all sequences.

    shuffle=False: sorted by length (fast, deterministic evaluation; `index` restores the order).
    shuffle=True: a random permutation cut into pools of batch_size * bucket_factor, each pool
    sorted by length and cut into batches, then the batch order shuffled: batches of similar
    lengths, yet a different mix every epoch. Deterministic given `generator`.
    """
    n = len(sequences)
    if shuffle:
        order = torch.randperm(n, generator=generator).tolist()
        pool = batch_size * max(bucket_factor, 1)
        chunks = []
        for start in range(0, n, pool):
            members = sorted(order[start:start + pool], key=lambda i: len(sequences[i]))
            chunks += [members[i:i + batch_size] for i in range(0, len(members), batch_size)]
        chunk_order = torch.randperm(len(chunks), generator=generator).tolist()
        chunks = [chunks[i] for i in chunk_order]
    else:
        order = sorted(range(n), key=lambda i: len(sequences[i]))
        chunks = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return [collate([sequences[i] for i in chunk],
                    [labels[i] for i in chunk] if labels is not None else None, chunk)
            for chunk in chunks]
