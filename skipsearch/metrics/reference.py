"""Reference statistics (running float64 sums of features) computed once and cached on disk."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..configuration.errors import ConfigError
from ..configuration.weights import content_sha256, file_sha256
from ..data.digits import digits_tensors
from ..models.prompts import is_prompt_set, listed_images
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
                     "a .csv or .jsonl prompt set listing images, "
                     "or an npz with Inception 'mu' and 'sigma'")


def _decoded(items: Iterable[tuple[Path | io.BytesIO, str]], name: str,
             batch_size: int) -> Iterator[torch.Tensor]:
    """Images decoded as RGB, ``batch_size`` at a time, as float (B, 3, H, W) in [-1, 1].

    ``items``: each image's source and its label (for errors); all must share one size, and
    only one batch is held in memory (a 30k-image reference needs no 24 GB of floats).
    """
    first, batch, seen = None, [], 0
    for source, label in items:
        image = _rgb(source, label, name)
        first = image.shape[:2] if first is None else first
        if image.shape[:2] != first:
            raise ConfigError("metric.reference", name, f"{label} is {image.shape[0]}x"
                              f"{image.shape[1]} and the first image {first[0]}x{first[1]}: "
                              "images come in two sizes; resize them to one size")
        batch.append(image)
        seen += 1
        if len(batch) == batch_size:
            yield _from_uint8(np.stack(batch))
            batch = []
    if batch:
        yield _from_uint8(np.stack(batch))
    if not seen:
        raise ConfigError("metric.reference", name, "holds no PNG/JPEG images")


def _rgb(source: Path | io.BytesIO, label: str, name: str) -> np.ndarray:
    """One image decoded as uint8 RGB (H, W, 3); an undecodable one is a ConfigError."""
    try:
        with Image.open(source) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise ConfigError("metric.reference", name,
                          f"{label} is not a readable image ({err})") from None


def _files(files: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """Image files as (source, label), in the order given."""
    return ((f, str(f)) for f in files)


def _folder_files(path: Path) -> list[Path]:
    """Images of a folder (recursively), sorted by path."""
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def listed_images_sha256(files: Sequence[Path]) -> str:
    """Key of listed images: each one's bytes, in order (not their names or captions)."""
    digest = hashlib.sha256(b"listed images\n")
    for file in files:
        digest.update(f"{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def _zip_members(path: Path) -> Iterator[tuple[io.BytesIO, str]]:
    """Images inside a zip, sorted by member name, read one at a time."""
    if not zipfile.is_zipfile(path):
        raise ConfigError("metric.reference", str(path), "not a readable zip file")
    with zipfile.ZipFile(path) as archive:
        names = sorted(m.filename for m in archive.infolist() if not m.is_dir()
                       and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES
                       and not m.filename.startswith("__MACOSX/"))
        for n in names:
            yield io.BytesIO(archive.read(n)), n


def _npz_images(path: Path) -> torch.Tensor:
    """The uint8 images of an npz (key ``images`` or ``arr_0``)."""
    with np.load(path) as data:
        key = "images" if "images" in data else "arr_0"
        if key not in data:
            raise ConfigError("metric.reference", str(path), "an npz of images needs an "
                              "'images' (or 'arr_0') uint8 array, or 'mu' and 'sigma'")
        return _from_uint8(data[key])


def _check_known(name: str) -> None:
    """ConfigError unless ``name`` is digits, a folder, a .zip, an .npz or a prompt set."""
    path = Path(name)
    known = path.is_dir() or (path.is_file() and path.suffix.lower() in (".zip", ".npz"))
    if path.is_file() and is_prompt_set(path):
        listed_images(path)  # refused unless it lists images, each of them a file
        known = True
    if name != "digits" and not known:
        raise ConfigError("metric.reference", name, UNKNOWN_REFERENCE)


def reference_batches(name: str, batch_size: int = 500) -> Iterator[torch.Tensor]:
    """Real images in [-1, 1], a batch at a time: the bundled ``digits``, an npz of uint8
    images, a folder, a zip, or the images a prompt set lists (each once, in row order).

    Folders, zips and prompt sets are decoded batch by batch, never held whole.
    """
    _check_known(name)
    path = Path(name)
    if name == "digits" or (path.is_file() and path.suffix.lower() == ".npz"):
        yield from (digits_tensors()[0] if name == "digits" else _npz_images(path)).split(
            batch_size)
    elif path.is_dir():
        yield from _decoded(_files(_folder_files(path)), name, batch_size)
    elif is_prompt_set(path):
        yield from _decoded(_files(listed_images(path)), name, batch_size)
    else:
        yield from _decoded(_zip_members(path), name, batch_size)


def reference_images(name: str) -> torch.Tensor:
    """Every real image of ``reference_batches`` in one tensor (small references only)."""
    return torch.cat(list(reference_batches(name)))


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


def batches_of(images: torch.Tensor | Iterable[torch.Tensor],
               batch_size: int) -> Iterable[torch.Tensor]:
    """A tensor of images split into batches, or batches as they come."""
    return images.split(batch_size) if isinstance(images, torch.Tensor) else images


@torch.no_grad()
def feature_sums(extractor: FeatureExtractor, images: torch.Tensor | Iterable[torch.Tensor],
                 batch_size: int = 500) -> FeatureSums:
    """Accumulate float64 feature sums over ``images`` (a tensor, or its batches)."""
    device = next(extractor.parameters(), torch.empty(0)).device
    total = outer = None
    count = 0
    for batch in batches_of(images, batch_size):
        f = extractor(batch.to(device))
        total = f.sum(0) if total is None else total + f.sum(0)
        outer = f.T @ f if outer is None else outer + f.T @ f
        count += batch.shape[0]
    return FeatureSums(total, outer, count)


def images_sha256(images: torch.Tensor) -> str:
    """Hex SHA-256 of the images' float32 bytes."""
    return hashlib.sha256(images.float().contiguous().numpy().tobytes()).hexdigest()


def _data_sha256(name: str, images: torch.Tensor | None) -> str:
    """Key of a data set: the bundled images' bytes, a file's, zip's or folder's bytes, or the
    bytes of the images a prompt set lists, in order."""
    if images is not None:
        return images_sha256(images)
    path = Path(name)
    if path.is_file() and is_prompt_set(path):
        return listed_images_sha256(listed_images(path))
    return content_sha256(path)


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
def all_features(extractor: FeatureExtractor, images: torch.Tensor | Iterable[torch.Tensor],
                 batch_size: int = 500) -> torch.Tensor:
    """The features of ``images`` (a tensor, or its batches; float64, on the CPU)."""
    device = next(extractor.parameters(), torch.empty(0)).device
    return torch.cat([extractor(b.to(device)).double().cpu()
                      for b in batches_of(images, batch_size)])


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
    features = all_features(extractor, images if images is not None
                            else reference_batches(name))
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
    sums = feature_sums(extractor, images if images is not None else reference_batches(name))
    _atomic_save(path, {"total": sums.total, "outer": sums.outer,
                        "count": torch.tensor(sums.count)}, extractor, data_sha)
    return sums
