"""Build registered metrics: each feature network once, each statistic with its reference."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..configuration.errors import ConfigError
from .reference import FeatureSums, cached_features, cached_reference
from .registry import METRICS, NETWORKS, STATISTICS
from .scorer import Metric, Scorer
from .statistic import Statistic


def imported(target: str):
    """The object a ``"module:name"`` string names."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def build_network(name: str, path: Path | None, precision: str = "fp32",
                  device: torch.device | str = "cpu") -> nn.Module:
    """Feature network ``name`` from ``path``, autocast to ``precision`` (renamed if not fp32).

    Without a path a bundled network loads its bundled file.
    """
    network_def = NETWORKS[name]
    loader = imported(network_def.loader)
    network = loader(path, network_def.key) if path is not None else loader(key=network_def.key)
    if precision != "fp32":  # other features, other statistics: named apart, cached apart
        network.precision = precision
        network.name = f"{network.name}-{precision}"
    return network.to(device)


def build_statistic(statistic: str, network: nn.Module, reference: str, cache_dir: Path,
                    device: torch.device | str) -> Statistic:
    """Statistic ``statistic`` against ``reference`` as ``network`` sees it (cached)."""
    definition = STATISTICS[statistic]
    cls = imported(definition.cls)
    if definition.needs == "sums":
        sums = cached_reference(reference, network, cache_dir)
        return cls(FeatureSums(sums.total.to(device), sums.outer.to(device), sums.count))
    if definition.needs == "features":
        return cls(cached_features(reference, network, cache_dir).to(device))
    return cls()


def check_channels(name: str, key: str, image_channels: int, model_name: str) -> None:
    """Metric ``name`` must score ``image_channels``-channel images; else ConfigError.

    The error names ``key`` and the registered metrics that score such images.
    """
    wanted = NETWORKS[METRICS[name].network].channels
    if wanted != image_channels:
        fitting = [m for m, d in METRICS.items()
                   if NETWORKS[d.network].channels == image_channels]
        raise ConfigError(key, name, f"scores {wanted}-channel images, but {model_name} makes "
                          f"{image_channels}-channel ones; use one of "
                          f"{', '.join(fitting) or 'no registered metric'}")


def build_scorer(names: Sequence[str], files: Mapping[str, Path | None], reference: str,
                 cache_dir: Path, device: torch.device | str, precision: str = "fp32",
                 image_channels: int | None = None, model_name: str = "the model") -> Scorer:
    """A scorer of the metrics ``names`` (the first is primary), each network loaded once.

    ``image_channels``: what the model makes; a metric whose network scores other images is a
    ConfigError naming it.
    """
    networks: dict[str, nn.Module] = {}
    metrics = []
    for name in names:
        definition = METRICS[name]
        if image_channels is not None:
            check_channels(name, "metric.name" if name == names[0] else "metric.confirm",
                           image_channels, model_name)
        if definition.network not in networks:
            networks[definition.network] = build_network(
                definition.network, files.get(definition.network), precision, device)
        network = networks[definition.network]
        statistic = build_statistic(definition.statistic, network, reference, cache_dir, device)
        metrics.append(Metric(definition, network, statistic, reference))
    return Scorer(metrics, device)
