"""scikit-learn's handwritten digits (shipped inside the package, no download), upsampled."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

NUM_CLASSES = 10
RESOLUTION = 16


def digits_tensors(resolution: int = RESOLUTION) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as float32 images in [-1, 1] of shape (N, 1, R, R), and their labels."""
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(resolution, resolution), mode="bilinear",
                           align_corners=False).clamp(0.0, 1.0)
    labels = torch.from_numpy(bunch.target).long()
    return images * 2.0 - 1.0, labels


def train_test_split_indices(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, ...]:
    """A seeded random split of range(n) into (train, test) index tensors."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = round(n * test_fraction)
    return perm[n_test:], perm[:n_test]
