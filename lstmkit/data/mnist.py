"""MNIST as sequences: images from an .npz file read row by row (28 steps of 28 pixels), pixel by
pixel (784 steps of 1 pixel), or pixel by pixel in a fixed random order ("permuted", which breaks
the locality a row-by-row reader gets for free and so tests long-range memory)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lstmkit.errors import UsageError

MODES = ("rows", "pixels", "permuted")
REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_mnist_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The four arrays, checked: x (N, H, W) or (N, H*W) pixel values, y (N,) labels 0..9."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"npz file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:  # never unpickle: loading runs no code
            missing = [key for key in REQUIRED_KEYS if key not in archive.files]
            if missing:
                raise UsageError(f"{path} lacks key(s) {', '.join(missing)}; it has {', '.join(archive.files)}; "
                                 f"expected {', '.join(REQUIRED_KEYS)}")
            arrays = {key: archive[key] for key in REQUIRED_KEYS}
    except (ValueError, OSError) as error:
        if isinstance(error, UsageError):
            raise
        raise UsageError(f"{path} is not a readable .npz file ({error})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 2:
            side = int(round(np.sqrt(x.shape[1])))
            if side * side != x.shape[1]:
                raise UsageError(f"{path}: x_{split} has shape {x.shape}; expected (N, 28, 28) or (N, 784)")
            arrays[f"x_{split}"] = x = x.reshape(len(x), side, side)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UsageError(f"{path}: x_{split} {x.shape} and y_{split} {y.shape} do not match; "
                             f"expected (N, H, W) images and (N,) labels")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise UsageError(f"{path}: y_{split} holds labels {y.min()}..{y.max()}; expected 0..9")
    return arrays


def pixel_scale(x: np.ndarray) -> float:
    """uint8 images go to [0, 1]; float images are taken as already scaled."""
    return 255.0 if x.dtype == np.uint8 else 1.0


def permutation_for(mode: str, num_pixels: int, seed: int) -> np.ndarray | None:
    """The fixed pixel order for "permuted" (a function of the seed alone, saved with the model)."""
    if mode != "permuted":
        return None
    return np.random.default_rng(seed).permutation(num_pixels)


def to_sequences(x: np.ndarray, mode: str, permutation: np.ndarray | None = None) -> torch.Tensor:
    """Images (N, H, W) -> float32 sequences, batch first: rows (N, H, W); pixels/permuted (N, H*W, 1)."""
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r} is not known; allowed: {', '.join(MODES)}")
    images = torch.from_numpy(np.ascontiguousarray(x)).float() / pixel_scale(x)  # (N, H, W)
    if mode == "rows":
        return images
    pixels = images.reshape(len(images), -1)  # (N, H*W)
    if mode == "permuted":
        pixels = pixels[:, torch.from_numpy(permutation)]
    return pixels.unsqueeze(-1)  # (N, H*W, 1)
