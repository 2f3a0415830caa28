"""Reference statistics (running float64 sums of features) computed once and cached on disk."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..configuration.errors import ConfigError
from ..configuration.weights import content_sha256
from ..data.digits import digits_tensors
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


UNKNOWN_REFERENCE = ("give digits, a folder or .zip of images, an npz of uint8 images, "
                     "or an npz with Inception 'mu' and 'sigma'")


def _stack_images(images: list[np.ndarray], name: str) -> torch.Tensor:
    """Decoded RGB images of one size to float (N, 3, H, W) in [-1, 1]."""
    if not images:
        raise ConfigError("metric.reference", name, "holds no PNG/JPEG images")
    sizes = sorted({a.shape[:2] for a in images})
    if len(sizes) > 1:
        raise ConfigError("metric.reference", name, f"images come in {len(sizes)} sizes "
                          f"({sizes[0]} ... {sizes[-1]}); resize them to one size")
    return _from_uint8(np.stack(images))


def _folder_images(path: Path) -> torch.Tensor:
    """Images of a folder (recursively), sorted by path."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return _stack_images([np.asarray(Image.open(f).convert("RGB")) for f in files], str(path))


def _zip_images(path: Path) -> torch.Tensor:
    """Images inside a zip, sorted by member name, decoded in memory."""
    if not zipfile.is_zipfile(path):
        raise ConfigError("metric.reference", str(path), "not a readable zip file")
    with zipfile.ZipFile(path) as archive:
        names = sorted(m.filename for m in archive.infolist() if not m.is_dir()
                       and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES
                       and not m.filename.startswith("__MACOSX/"))
        images = [np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB"))
                  for n in names]
    return _stack_images(images, str(path))


def _npz_images(path: Path) -> torch.Tensor:
    """The uint8 images of an npz (key ``images`` or ``arr_0``)."""
    with np.load(path) as data:
        key = "images" if "images" in data else "arr_0"
        if key not in data:
            raise ConfigError("metric.reference", str(path), "an npz of images needs an "
                              "'images' (or 'arr_0') uint8 array, or 'mu' and 'sigma'")
        return _from_uint8(data[key])


def _check_known(name: str) -> None:
    """ConfigError unless ``name`` is digits, a folder, a .zip or an .npz file."""
    path = Path(name)
    known = path.is_dir() or (path.is_file() and path.suffix.lower() in (".zip", ".npz"))
    if name != "digits" and not known:
        raise ConfigError("metric.reference", name, UNKNOWN_REFERENCE)


def reference_images(name: str) -> torch.Tensor:
    """Real images in [-1, 1]: the bundled ``digits``, an npz of uint8 images, a folder or zip."""
    _check_known(name)
    if name == "digits":
        return digits_tensors()[0]
    path = Path(name)
    if path.is_dir():
        return _folder_images(path)
    if path.suffix.lower() == ".zip":
        return _zip_images(path)
    return _npz_images(path)


#: the statistics a published file holds, by the extractor that computed them
PUBLISHED_KEYS = {"inception-v3-compat": "fid", "dinov2-vitl14": "fd_dinov2"}


def published_statistics(path: Path, extractor: FeatureExtractor,
                         count: int = 50000) -> FeatureSums | None:
    """Sums equivalent to published ``mu``, ``sigma`` (EDM's npz, EDM2's pkl); else None.

    The sums reproduce mu and sigma exactly for any count; published files come from 50k images.
    """
    if not path.is_file() or path.suffix.lower() not in (".npz", ".pkl"):
        return None
    if path.suffix.lower() == ".pkl":
        from .edm2_reference import read_edm2_reference

        held = read_edm2_reference(path)
        key = PUBLISHED_KEYS.get(extractor.name.removesuffix(f"-{extractor.precision}"))
        if key not in held:
            raise ConfigError("metric.reference", str(path),
                              f"holds statistics of {', '.join(held)}, none of "
                              f"{extractor.name}; give that network's statistics or images")
        mu, sigma = (torch.from_numpy(a).double() for a in held[key])
    else:
        with np.load(path) as data:
            if "mu" not in data or "sigma" not in data:
                return None
            mu = torch.from_numpy(data["mu"]).double().flatten()
            sigma = torch.from_numpy(data["sigma"]).double()
    _check_published(path, extractor, mu, sigma)
    return FeatureSums(mu * count, sigma * (count - 1) + count * torch.outer(mu, mu), count)


def _check_published(path: Path, extractor: FeatureExtractor, mu: torch.Tensor,
                     sigma: torch.Tensor) -> None:
    """Published statistics must be of the extractor's network, in fp32, of its size."""
    d = mu.numel()
    if extractor.precision != "fp32":
        raise ConfigError("precision.features", extractor.precision,
                          f"{path} holds statistics of fp32 features; compare them "
                          "with fp32 features: precision.features=fp32")
    if extractor.name not in PUBLISHED_KEYS:
        raise ConfigError("metric.reference", str(path),
                          f"holds published {d}-d statistics, which {extractor.name} "
                          "features cannot be compared with; give reference images")
    if d != extractor.num_features or tuple(sigma.shape) != (d, d):
        raise ConfigError("metric.reference", str(path),
                          f"holds mu of {d} and sigma of {tuple(sigma.shape)} features, but "
                          f"{extractor.name} gives {extractor.num_features}; use statistics of "
                          f"{extractor.num_features}-d features")


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


def _data_sha256(name: str, images: torch.Tensor | None) -> str:
    """Key of a data set: the bundled images' bytes, or a file's, zip's or folder's bytes."""
    return images_sha256(images) if images is not None else content_sha256(Path(name))


def _read_checked(path: Path, extractor: FeatureExtractor,
                  data_sha: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """A cache file's metadata and tensors, refused unless of this data set and extractor."""
    delete = f"delete {path} to recompute"
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError("metric.reference", str(path),
                          f"unreadable cache file ({err}); {delete}") from None
    wanted = {"extractor_sha256": extractor.sha256, "data_sha256": data_sha}
    for key, value in wanted.items():
        if meta.get(key) != value:
            raise ConfigError("metric.reference", str(path), f"cached {key} is "
                              f"{meta.get(key)}, not {value}; {delete}")
    return meta, tensors


def _read_cache(path: Path, extractor: FeatureExtractor, data_sha: str) -> FeatureSums:
    """Cached sums, refused (ConfigError) unless they are of this data set and extractor."""
    _, t = _read_checked(path, extractor, data_sha)
    d = extractor.num_features
    if tuple(t["total"].shape) != (d,) or tuple(t["outer"].shape) != (d, d):
        raise ConfigError("metric.reference", str(path), f"cached features are "
                          f"{t['total'].numel()}-d, but {extractor.name} gives {d}-d; "
                          f"delete {path} to recompute")
    return FeatureSums(t["total"], t["outer"], int(t["count"].item()))


def _atomic_save(path: Path, tensors: dict[str, torch.Tensor], extractor: FeatureExtractor,
                 data_sha: str) -> None:
    """Store tensors with the hashes they depend on, atomically (write, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: workers race
    save_file({k: v.cpu() for k, v in tensors.items()}, str(tmp),
              metadata={"extractor_sha256": extractor.sha256, "data_sha256": data_sha})
    tmp.replace(path)


@torch.no_grad()
def all_features(extractor: FeatureExtractor, images: torch.Tensor,
                 batch_size: int = 500) -> torch.Tensor:
    """The features of ``images`` (float64, on the CPU), in batches."""
    device = next(extractor.parameters(), torch.empty(0)).device
    return torch.cat([extractor(b.to(device)).double().cpu() for b in images.split(batch_size)])


def cached_features(name: str, extractor: FeatureExtractor, cache_dir: Path) -> torch.Tensor:
    """Reference features (N, D) for (data set, extractor), read from ``cache_dir`` or made.

    KID and precision/recall need the features themselves; a statistics file holds none.
    """
    path = Path(name)
    if (path.is_file() and path.suffix.lower() == ".pkl") or \
            published_statistics(path, extractor) is not None:
        raise ConfigError("metric.reference", name, "holds statistics only; KID and "
                          "precision/recall need reference images (a folder, zip or npz)")
    _check_known(name)
    images = reference_images(name) if name == "digits" else None
    data_sha = _data_sha256(name, images)
    path = cache_dir / f"{_cache_stem(name, data_sha, extractor)}-features.safetensors"
    if path.is_file():
        _, tensors = _read_checked(path, extractor, data_sha)
        features = tensors["features"]
        if features.ndim != 2 or features.shape[1] != extractor.num_features:
            raise ConfigError("metric.reference", str(path), "cached features have shape "
                              f"{tuple(features.shape)}; delete {path} to recompute")
        return features.double()
    log.info("computing reference features of %s with %s", name, extractor.name)
    features = all_features(extractor, images if images is not None else reference_images(name))
    _atomic_save(path, {"features": features.float().contiguous()}, extractor, data_sha)
    return features.float().double()


def _cache_stem(name: str, data_sha: str, extractor: FeatureExtractor) -> str:
    """The cache file name of (data set, extractor), without suffix."""
    label = "digits" if name == "digits" else Path(name).name
    return f"{label}-{data_sha[:12]}-{extractor.name}-{extractor.sha256[:12]}"


def cached_reference(name: str, extractor: FeatureExtractor, cache_dir: Path) -> FeatureSums:
    """Reference sums for (data set, extractor), read from ``cache_dir`` or computed and stored.

    A cache file whose hashes or feature dimension differ from the request is refused.
    """
    published = published_statistics(Path(name), extractor)
    if published is not None:
        return published
    _check_known(name)
    # A file, zip or folder is keyed by its bytes, so a cache hit never decodes its images.
    images = reference_images(name) if name == "digits" else None
    data_sha = _data_sha256(name, images)
    label = "digits" if name == "digits" else Path(name).name
    path = cache_dir / f"{_cache_stem(name, data_sha, extractor)}.safetensors"
    if path.is_file():
        return _read_cache(path, extractor, data_sha)
    log.info("computing reference statistics of %s with %s", label, extractor.name)
    sums = feature_sums(extractor, images if images is not None else reference_images(name))
    _atomic_save(path, {"total": sums.total, "outer": sums.outer,
                        "count": torch.tensor(sums.count)}, extractor, data_sha)
    return sums
