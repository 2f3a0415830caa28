"""FID on torchmetrics with the digits feature network and cached reference statistics."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from .blocks import BlockSums
from .features import FeatureExtractor
from .fid_infinity import FIDInfinity, fid_infinity
from .reference import FeatureSums


def _checked_checkpoints(checkpoints: Sequence[int]) -> tuple[int, ...]:
    """Sorted unique image counts; FID needs at least 2 images (ValueError otherwise)."""
    counts = sorted({int(k) for k in checkpoints})
    if counts and counts[0] < 2:
        raise ValueError(f"checkpoints must be image counts >= 2, got {list(checkpoints)}")
    return tuple(counts)


class FIDScorer:
    """Streams generated batches through torchmetrics' FID against fixed reference sums.

    Only torchmetrics' float64 sums are kept, never images or features. With checkpoints (see
    ``reset``) the FID of the first k images is recorded on the way, for FID-infinity.
    """

    def __init__(self, extractor: FeatureExtractor, reference: FeatureSums,
                 device: torch.device | str = "cpu") -> None:
        self.extractor = extractor
        self.metric = FrechetInceptionDistance(feature=extractor, reset_real_features=False)
        self.metric.to(device)
        self.metric.real_features_sum = reference.total.to(device, torch.float64)
        self.metric.real_features_cov_sum = reference.outer.to(device, torch.float64)
        self.metric.real_features_num_samples = torch.tensor(reference.count, device=device)
        self.reference = reference
        self._count = 0
        self._checkpoints: tuple[int, ...] = ()
        self._curve: list[tuple[int, float]] = []
        self._blocks: BlockSums | None = None
        self._device = device
        extractor.register_forward_hook(self._on_features)

    def _on_features(self, module, inputs, features: torch.Tensor) -> None:
        """Add generated features to the seed blocks while a confirmation asks for them."""
        if self._blocks is not None:
            self._blocks.add(features)

    @property
    def blocks(self) -> BlockSums | None:
        """Per-block feature sums since the last reset (when ``reset`` was given blocks)."""
        return self._blocks

    @property
    def count(self) -> int:
        """Generated images added since the last reset."""
        return self._count

    @property
    def curve(self) -> list[tuple[int, float]]:
        """(count, FID) at each checkpoint reached since the last reset."""
        return list(self._curve)

    def reset(self, checkpoints: Sequence[int] = (), blocks: int = 0, total: int = 0) -> None:
        """Forget generated features; keep the reference; record FID at ``checkpoints`` counts.

        With ``blocks`` the features of the next ``total`` images are also summed per block of
        consecutive images (for the interval of a paired FID change, ``metrics.blocks``).
        """
        self.metric.reset()
        self._blocks = None
        if blocks:
            dim = int(self.reference.total.shape[0])
            self._blocks = BlockSums(blocks, total, dim, self._device)
        self._count = 0
        self._checkpoints = _checked_checkpoints(checkpoints)
        self._curve = []

    def update(self, images: torch.Tensor) -> None:
        """Add a batch of generated images in [-1, 1], split at checkpoint counts."""
        end = self._count + images.shape[0]
        for k in self._checkpoints:
            if self._count < k <= end:
                head, images = images[: k - self._count], images[k - self._count:]
                self._add(head)
                self._curve.append((k, self.compute()))
        if images.shape[0]:
            self._add(images)

    def _add(self, images: torch.Tensor) -> None:
        """Accumulate one (non-empty) slice of generated images."""
        self.metric.update(images, real=False)
        self._count += images.shape[0]

    def compute(self) -> float:
        """FID of the images added since the last reset; NaN if a feature was not finite."""
        if not bool(torch.isfinite(self.metric.fake_features_sum).all()):
            return float("nan")
        return float(self.metric.compute())

    def compute_infinity(self) -> FIDInfinity:
        """FID-infinity fitted to the checkpoint curve plus the FID at the current count."""
        points = dict(self._curve)
        if self._count not in points:
            points[self._count] = self.compute()
        if len(points) < 2:
            raise ValueError(f"FID-infinity needs FIDs at 2 or more counts, got {sorted(points)}; "
                             "call reset(checkpoints=infinity_counts(n)) before the updates")
        counts = sorted(points)
        return fid_infinity(counts, [points[n] for n in counts])
