"""``skipsearch refstats``: compute (or find) the cached reference statistics of the metric."""

from __future__ import annotations

from omegaconf import DictConfig

from ..config import Settings, build
from ..metrics.reference import cached_reference
from ..runtime import build_extractor, setup_device


def run_refstats(cfg: DictConfig, settings: Settings | None = None) -> None:
    """Fill the cache for (metric.reference, feature network) and print what it holds."""
    settings = settings or build(cfg, "refstats")
    extractor = build_extractor(settings, setup_device(settings))
    cache = settings.out_dir / "cache" / "reference"
    sums = cached_reference(settings.metric.reference, extractor, cache)
    print(f"{settings.metric.reference}: {sums.count} images, {sums.total.numel()}-d features of "
          f"{extractor.name} (sha256 {extractor.sha256[:12]}), cached in {cache}")
