"""scikit-learn's handwritten digits (shipped inside the package, no download), upsampled."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

NUM_CLASSES = 10
RESOLUTION = 16


def digits_tensors(resolution: int = RESOLUTION) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as float32 images in [-1, 1] of shape (N, 1, R, R), and their labels."""
    pixels, target = digits_arrays()
    images = torch.from_numpy(pixels).float().unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(resolution, resolution), mode="bilinear",
                           align_corners=False).clamp(0.0, 1.0)
    labels = torch.from_numpy(target).long()
    return images * 2.0 - 1.0, labels


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as float64 (N, 8, 8) pixels in [0, 16] and their int labels.

    As ``sklearn.datasets.load_digits`` reads them, from the same file, without importing
    scikit-learn (most of a second, and part of every command's start-up).
    """
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0], "datasets", "data", "digits.csv.gz") if folders else None
    if path is None or not path.is_file():  # laid out otherwise: ask scikit-learn
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(path, "rt", encoding="utf-8") as file:
        data = np.loadtxt(file, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)


def train_test_split_indices(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, ...]:
    """A seeded random split of range(n) into (train, test) index tensors."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = round(n * test_fraction)
    return perm[n_test:], perm[:n_test]
