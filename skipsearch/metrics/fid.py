"""FID on torchmetrics with the digits feature network and cached reference statistics."""

from __future__ import annotations

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from .features import FeatureExtractor
from .reference import FeatureSums


class FIDScorer:
    """Streams generated batches through torchmetrics' FID against fixed reference sums."""

    def __init__(self, extractor: FeatureExtractor, reference: FeatureSums,
                 device: torch.device | str = "cpu") -> None:
        self.extractor = extractor
        self.metric = FrechetInceptionDistance(feature=extractor, reset_real_features=False)
        self.metric.to(device)
        self.metric.real_features_sum = reference.total.to(device, torch.float64)
        self.metric.real_features_cov_sum = reference.outer.to(device, torch.float64)
        self.metric.real_features_num_samples = torch.tensor(reference.count, device=device)

    def reset(self) -> None:
        """Forget generated features; keep the reference statistics."""
        self.metric.reset()

    def update(self, images: torch.Tensor) -> None:
        """Add a batch of generated images in [-1, 1]."""
        self.metric.update(images, real=False)

    def compute(self) -> float:
        """FID of the images added since the last reset."""
        return float(self.metric.compute())
