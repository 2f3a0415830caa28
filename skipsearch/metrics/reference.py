"""Reference statistics (running float64 sums of features) computed once and cached on disk."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ..data.digits import digits_tensors
from ..errors import ConfigError
from ..weights import content_sha256
from .features import FeatureExtractor

log = logging.getLogger(__name__)


@dataclass
class FeatureSums:
    """sum_k f_k, sum_k f_k f_k^T and the count, in float64 (finalised into mu and sigma later)."""

    total: torch.Tensor
    outer: torch.Tensor
    count: int


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _from_uint8(array: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, C) or (N, C, H, W) to float (N, C, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(array))
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)
    return x[:, :3].float() / 127.5 - 1.0


def reference_images(name: str) -> torch.Tensor:
    """Real images in [-1, 1]: the bundled ``digits``, an npz of uint8 images, or a folder."""
    if name == "digits":
        return digits_tensors()[0]
    path = Path(name)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError("metric.reference", name, "the folder holds no PNG/JPEG images")
        return _from_uint8(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as data:
            key = "images" if "images" in data else "arr_0"
            if key not in data:
                raise ConfigError("metric.reference", name, "an npz of images needs an "
                                  "'images' (or 'arr_0') uint8 array, or 'mu' and 'sigma'")
            return _from_uint8(data[key])
    raise ConfigError("metric.reference", name, "give digits, a folder of images, an npz of "
                      "uint8 images, or an npz with Inception 'mu' and 'sigma'")


def published_statistics(path: Path, extractor: FeatureExtractor,
                         count: int = 50000) -> FeatureSums | None:
    """Sums equivalent to an npz of FID statistics ``mu``, ``sigma`` (EDM's files); else None.

    The sums reproduce mu and sigma exactly for any count; published files come from 50k images.
    """
    if path.suffix != ".npz" or not path.is_file():
        return None
    with np.load(path) as data:
        if "mu" not in data or "sigma" not in data:
            return None
        mu = torch.from_numpy(data["mu"]).double()
        sigma = torch.from_numpy(data["sigma"]).double()
    if extractor.name != "inception-v3-compat" or mu.numel() != extractor.num_features:
        raise ConfigError("metric.reference", str(path),
                          f"holds {mu.numel()}-d InceptionV3 statistics, which {extractor.name} "
                          "features cannot be compared with; use metric.feature=inception")
    return FeatureSums(mu * count, sigma * (count - 1) + count * torch.outer(mu, mu), count)


@torch.no_grad()
def feature_sums(extractor: FeatureExtractor, images: torch.Tensor,
                 batch_size: int = 500) -> FeatureSums:
    """Accumulate float64 feature sums over ``images`` in batches."""
    device = next(extractor.parameters(), torch.empty(0)).device
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
    published = published_statistics(Path(name), extractor)
    if published is not None:
        return published
    # A file or folder is keyed by its bytes, so a cache hit never decodes its images.
    images = reference_images(name) if name == "digits" else None
    data_sha = images_sha256(images) if images is not None else content_sha256(Path(name))
    label = "digits" if name == "digits" else Path(name).name
    stem = f"{label}-{data_sha[:12]}-{extractor.name}-{extractor.sha256[:12]}"
    path = cache_dir / f"{stem}.safetensors"
    if path.is_file():
        t = load_file(str(path))
        return FeatureSums(t["total"], t["outer"], int(t["count"].item()))
    log.info("computing reference statistics of %s with %s", label, extractor.name)
    sums = feature_sums(extractor, images if images is not None else reference_images(name))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"total": sums.total.cpu(), "outer": sums.outer.cpu(),
               "count": torch.tensor(sums.count)}, str(tmp),
              metadata={"extractor_sha256": extractor.sha256, "data_sha256": data_sha})
    tmp.replace(path)
    return sums
