"""One long token stream, as a language model trains on it: held-out tail, B parallel streams,
chunks for truncated back-propagation through time."""
from __future__ import annotations

import torch

from lstmkit.errors import UsageError


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut one stream (N,) into batch_size contiguous streams (B, N // B); row b continues itself
    from chunk to chunk, which is what lets the LSTM state be carried across chunks."""
    length = ids.numel() // batch_size
    if length < 2:
        raise UsageError(f"the text has {ids.numel()} tokens: too few for --batch-size {batch_size} "
                         f"(each of the {batch_size} streams needs at least 2 tokens)")
    return ids[: length * batch_size].view(batch_size, length)  # (B, L)


def bptt_chunks(streams: torch.Tensor, bptt: int):
    """Yield (inputs, targets), each (B, T<=bptt), targets shifted one token ahead, in stream order."""
    length = streams.size(1)
    for start in range(0, length - 1, bptt):
        end = min(start + bptt, length - 1)
        yield streams[:, start:end], streams[:, start + 1: end + 1]


def split_tokens(tokens: list[str], valid_fraction: float) -> tuple[list[str], list[str]]:
    """Hold out the last part of the text for validation (chronological, no shuffling of text)."""
    if not 0.0 < valid_fraction < 1.0:
        raise UsageError(f"--valid-fraction must be in (0, 1), got {valid_fraction}")
    cut = int(len(tokens) * (1.0 - valid_fraction))
    if cut < 2 or len(tokens) - cut < 2:
        raise UsageError(f"the text has {len(tokens)} tokens: too few to hold out a validation part")
    return tokens[:cut], tokens[cut:]
