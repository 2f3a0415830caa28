"""Reference statistics (running float64 sums of features) computed once and cached on disk."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.digits import digits_tensors
from .features import FeatureExtractor

log = logging.getLogger(__name__)
REFERENCES = ("digits",)


@dataclass
class FeatureSums:
    """sum_k f_k, sum_k f_k f_k^T and the count, in float64 (finalised into mu and sigma later)."""

    total: torch.Tensor
    outer: torch.Tensor
    count: int


def reference_images(name: str) -> torch.Tensor:
    """The real images of reference data set ``name``, float in [-1, 1]."""
    if name == "digits":
        return digits_tensors()[0]
    raise ValueError(f"unknown reference {name!r}")


@torch.no_grad()
def feature_sums(extractor: FeatureExtractor, images: torch.Tensor,
                 batch_size: int = 500) -> FeatureSums:
    """Accumulate float64 feature sums over ``images`` in batches."""
    device = next(extractor.parameters()).device
    total = outer = None
    for batch in images.split(batch_size):
        f = extractor(batch.to(device))
        total = f.sum(0) if total is None else total + f.sum(0)
        outer = f.T @ f if outer is None else outer + f.T @ f
    return FeatureSums(total, outer, images.shape[0])


def images_sha256(images: torch.Tensor) -> str:
    """Hex SHA-256 of the images' float32 bytes."""
    return hashlib.sha256(images.float().contiguous().numpy().tobytes()).hexdigest()


def cached_reference(name: str, extractor: FeatureExtractor, cache_dir: Path) -> FeatureSums:
    """Reference sums for (data set, extractor), read from ``cache_dir`` or computed and stored."""
    images = reference_images(name)
    data_sha = images_sha256(images)
    stem = f"{name}-{data_sha[:12]}-{extractor.name}-{extractor.sha256[:12]}"
    path = cache_dir / f"{stem}.safetensors"
    if path.is_file():
        t = load_file(str(path))
        return FeatureSums(t["total"], t["outer"], int(t["count"].item()))
    log.info("computing reference statistics of %s with %s", name, extractor.name)
    sums = feature_sums(extractor, images)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"total": sums.total.cpu(), "outer": sums.outer.cpu(),
               "count": torch.tensor(sums.count)}, str(tmp),
              metadata={"extractor_sha256": extractor.sha256, "data_sha256": data_sha})
    tmp.replace(path)
    return sums
