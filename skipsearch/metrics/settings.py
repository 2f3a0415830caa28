"""The ``metric`` group: feature network, reference set and the seeds scores use (torch-free)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError, check
from ..keys import get, get_bool, get_choice, get_int, get_optional
from ..seed_range import SEED_LIMIT, SeedRange

FEATURES = ("digits", "inception")


@dataclass(frozen=True)
class MetricSettings:
    """How FID is measured: features, reference, the search's seeds and the final score's."""

    feature: str
    reference: str
    search: SeedRange
    final: SeedRange
    fid_infinity: bool = False
    weights: Path | None = None  # digits features: null for the bundled classifier
    inception_weights: Path | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig, scored: bool = True) -> MetricSettings:
        """The checked ``metric`` group; with ``scored`` its files must exist too."""
        feature = get_choice(cfg, "metric.feature", FEATURES)
        weights = inception = None
        if scored and feature == "inception":
            inception = Path(check_inception_weights(cfg))
        if scored and feature == "digits" and get_optional(cfg, "metric.weights") is not None:
            weights = Path(cfg.metric.weights)
            check(weights.is_file(), "metric.weights", str(weights),
                  "no such file; give the feature network's weights, or null for the bundled "
                  "one")
            from ..weights import CLASSIFIER_FILE, check_network_file

            check_network_file(weights, "metric.weights", CLASSIFIER_FILE)
        reference = str(get(cfg, "metric.reference"))
        if scored:
            check(reference == "digits" or Path(reference).exists(), "metric.reference",
                  reference, "give digits, a folder or zip of images, an npz of uint8 images, "
                  "or an npz of Inception mu/sigma (e.g. EDM's imagenet-64x64.npz)")
            if Path(reference).is_file():
                check_reference_file(Path(reference))
        search = seed_range(cfg, "metric.seed_start", "metric.n_samples")
        infinity = get_bool(cfg, "metric.fid_infinity")
        return cls(feature, reference, search, final_range(cfg, search), infinity, weights,
                   inception)


def seed_range(cfg: DictConfig, start_key: str, count_key: str) -> SeedRange:
    """The seeds ``start_key`` .. + ``count_key``: at least 2 images, every seed below 2**63."""
    start, count = get_int(cfg, start_key, 0), get_int(cfg, count_key, 2)
    check(start + count <= SEED_LIMIT, start_key, start,
          f"with {count_key}={count} the seeds reach {start + count - 1}, but seeds must stay "
          "below 2**63 (torch's generators, the study's integers); lower it")
    return SeedRange(start, count)


def check_inception_weights(cfg: DictConfig) -> str:
    """``metric.inception_weights`` must be a local file (nothing is downloaded)."""
    from .inception import INCEPTION_FILE, INCEPTION_URL

    key = "metric.inception_weights"
    weights = OmegaConf.select(cfg, key, throw_on_missing=False)
    check(weights not in (None, "???") and Path(weights).is_file(), key, weights,
          f"InceptionV3 needs {INCEPTION_FILE}, published at {INCEPTION_URL}; "
          "download it and give its path")
    return str(weights)


def final_range(cfg: DictConfig, search: SeedRange) -> SeedRange:
    """``metric.final_samples`` seeds from ``metric.final_seed_start``, apart from ``search``."""
    if OmegaConf.select(cfg, "metric.final_seed_start") is None:
        n = get_int(cfg, "metric.final_samples", 2)
        start = search.stop
        check(start + n <= SEED_LIMIT, "metric.final_samples", n,
              f"the final seeds follow the search's (from {start}) and must stay below 2**63; "
              "lower metric.seed_start or set metric.final_seed_start")
    else:
        final = seed_range(cfg, "metric.final_seed_start", "metric.final_samples")
        start, n = final.start, final.count
        check(not SeedRange(start, n).overlaps(search), "metric.final_seed_start", start,
              f"the final seeds must not overlap the search seeds {search.start}.."
              f"{search.stop - 1}; use null (right after them) or a start >= {search.stop}")
    infinity = get_bool(cfg, "metric.fid_infinity")
    check(not infinity or n >= 20, "metric.fid_infinity", infinity,
          f"extrapolates from FID at 15 sample counts; metric.final_samples={n} is too few "
          "(use >= 20, 50000 as published)")
    return SeedRange(start, n)


def check_reference_file(path: Path) -> None:
    """A reference file must be a zip of images or an npz of images or of mu and sigma."""
    import numpy as np

    suffix = path.suffix.lower()
    check(suffix in (".zip", ".npz"), "metric.reference", str(path),
          "a reference file must be a .zip of images or an .npz (uint8 images, or mu and sigma)")
    check(zipfile.is_zipfile(path), "metric.reference", str(path),
          f"not a readable {suffix} file (it is not in zip format)")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.files)
        except (OSError, ValueError) as err:
            raise ConfigError("metric.reference", str(path), f"unreadable npz ({err})") from None
        check({"mu", "sigma"} <= keys or bool(keys & {"images", "arr_0"}), "metric.reference",
              str(path), f"holds {sorted(keys)}; an npz reference needs 'images' (or 'arr_0') "
              "uint8 images, or 'mu' and 'sigma'")
