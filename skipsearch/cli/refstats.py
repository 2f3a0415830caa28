"""``skipsearch refstats``: compute (or find) the cached reference statistics of the metric."""

from __future__ import annotations

from omegaconf import DictConfig

from ..configuration.build import Settings, build
from ..execution.runtime import build_scorer, setup_device


def run_refstats(cfg: DictConfig, settings: Settings | None = None) -> None:
    """Fill the reference cache of the metric and print what it holds."""
    settings = settings or build(cfg, "refstats")
    scorer = build_scorer(settings, setup_device(settings))
    cache = settings.out_dir / "cache" / "reference"
    for metric in scorer.metrics.values():
        extractor, held = metric.network, metric.statistic.held()
        print(f"{metric.name}: {settings.metric.reference}: {held} of {extractor.name} "
              f"(sha256 {extractor.sha256[:12]}), cached in {cache}")
