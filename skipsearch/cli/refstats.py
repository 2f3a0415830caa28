"""``skipsearch refstats``: compute (or find) the cached reference statistics of the metric."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..config import validate
from ..metrics.reference import cached_reference
from ..runtime import build_extractor, setup_device


def run_refstats(cfg: DictConfig) -> None:
    """Fill the cache for (metric.reference, feature network) and print what it holds."""
    validate(cfg, "refstats")
    extractor = build_extractor(cfg, setup_device(cfg))
    cache = Path(cfg.out_dir) / "cache" / "reference"
    sums = cached_reference(str(cfg.metric.reference), extractor, cache)
    print(f"{cfg.metric.reference}: {sums.count} images, {sums.total.numel()}-d features of "
          f"{extractor.name} (sha256 {extractor.sha256[:12]}), cached in {cache}")
