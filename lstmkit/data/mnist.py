"""MNIST as sequences: images from an .npz file read row by row (28 steps of 28 pixels), pixel by
pixel (784 steps of 1 pixel), or pixel by pixel in a fixed random order ("permuted", which breaks
the locality a row-by-row reader gets for free and so tests long-range memory)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from lstmkit.errors import UsageError

MODES = ("rows", "pixels", "permuted")
REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The REQUIRED_KEYS arrays of an .npz file, never unpickled (loading runs no code)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:  # not an .npz/.npy: numpy would try pickle and refuses
        if "pickle" not in str(error):
            raise UsageError(f"{path} is not a readable .npz file ({str(error)[:100]})") from None
        raise UsageError(f"{path} is not a readable .npz file (no zip archive of arrays, and "
                         f"lstmkit never loads pickled data); save the arrays with numpy.savez") \
            from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise UsageError(f"{path} is not a readable .npz file ({str(error)[:100] or 'empty'})") \
            from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UsageError(f"{path} holds one array, not an .npz archive with "
                         f"{', '.join(REQUIRED_KEYS)}; save them with numpy.savez")
    with archive:
        missing = [key for key in REQUIRED_KEYS if key not in archive.files]
        if missing:
            raise UsageError(f"{path} lacks key(s) {', '.join(missing)}; it has "
                             f"{', '.join(archive.files)[:200]}; expected {', '.join(REQUIRED_KEYS)}")
        arrays = {}
        for key in REQUIRED_KEYS:
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                reason = ("stored as pickled Python objects, which lstmkit never loads; save "
                          "numeric arrays") if "pickle" in str(error) else str(error)[:100]
                raise UsageError(f"{path}: {key} is {reason}") from None
            except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
                raise UsageError(f"{path}: {key} is damaged ({str(error)[:100]})") from None
    return arrays


def _check_values(x: np.ndarray, y: np.ndarray, split: str, path: Path) -> None:
    """Pixels numeric, finite and of image scale (uint8 0..255 or floats within [-255, 255]);
    labels whole numbers 0..9; at least one image."""
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "iuf":
        raise UsageError(f"{path}: x_{split} ({x.dtype}) and y_{split} ({y.dtype}) must be "
                         f"numeric arrays")
    if len(x) == 0 or 0 in x.shape:
        raise UsageError(f"{path}: x_{split} holds no images (shape {x.shape})")
    if x.dtype != np.uint8 and not (np.isfinite(x).all() and np.abs(x).max() <= 255):
        raise UsageError(f"{path}: x_{split} holds NaN, infinite or out-of-scale pixels (expected "
                         f"uint8 0..255 or floats in [0, 1])")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise UsageError(f"{path}: y_{split} holds labels that are not whole numbers")


def load_mnist_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The four arrays, checked: x (N, H, W) or (N, H*W) pixel values, y (N,) labels 0..9."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"npz file not found: {path}")
    arrays = _read_arrays(path)
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
        _check_values(x, y, split, path)
        if y.min() < 0 or y.max() > 9:
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
