"""Build registered metrics: each feature network once, each statistic with its reference."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from .registry import METRICS, NETWORKS
from .scorer import Metric, Scorer
from .statistic import Statistic


def _digits(path: Path | None) -> nn.Module:
    from .features import DIGITS_CLASSIFIER, digits_feature_extractor

    return digits_feature_extractor(path or DIGITS_CLASSIFIER, NETWORKS["digits"].key)


def _digits_autoencoder(path: Path | None) -> nn.Module:
    from .digits_autoencoder import DIGITS_AUTOENCODER, digits_autoencoder_features

    return digits_autoencoder_features(path or DIGITS_AUTOENCODER,
                                       NETWORKS["digits_autoencoder"].key)


def _inception(path: Path | None) -> nn.Module:
    from .inception import inception_features

    return inception_features(path, NETWORKS["inception"].key)


def _dinov2(path: Path | None) -> nn.Module:
    from .dinov2 import dinov2_features

    return dinov2_features(path, NETWORKS["dinov2"].key)


def _clip(path: Path | None) -> nn.Module:
    from .clip_score import clip_image_text

    return clip_image_text(path, NETWORKS["clip"].key)


#: feature network name -> its loader from a local file (None: the bundled one)
NETWORK_LOADERS: dict[str, Callable[[Path | None], nn.Module]] = {
    "digits": _digits, "digits_autoencoder": _digits_autoencoder, "inception": _inception,
    "dinov2": _dinov2, "clip": _clip}


def build_network(name: str, path: Path | None, precision: str = "fp32",
                  device: torch.device | str = "cpu") -> nn.Module:
    """Feature network ``name`` from ``path``, autocast to ``precision`` (renamed if not fp32)."""
    network = NETWORK_LOADERS[name](path)
    if precision != "fp32":  # other features, other statistics: named apart, cached apart
        network.precision = precision
        network.name = f"{network.name}-{precision}"
    return network.to(device)


def build_statistic(statistic: str, network: nn.Module, reference: str, cache_dir: Path,
                    device: torch.device | str) -> Statistic:
    """Statistic ``statistic`` against ``reference`` as ``network`` sees it (cached)."""
    from .reference import cached_features, cached_reference

    if statistic == "frechet":
        from .frechet import Frechet

        return Frechet(cached_reference(reference, network, cache_dir), device)
    if statistic == "kid":
        from .kid import KID

        return KID(cached_features(reference, network, cache_dir).to(device))
    if statistic == "precision_recall":
        from .precision_recall import PrecisionRecall

        return PrecisionRecall(cached_features(reference, network, cache_dir).to(device))
    if statistic == "clip_score":
        from .clip_score import CLIPScore

        return CLIPScore()
    raise ValueError(f"unknown statistic {statistic!r}")


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
        wanted = NETWORKS[definition.network].channels
        if image_channels is not None and wanted != image_channels:
            raise ConfigError("metric.name" if name == names[0] else "metric.confirm", name,
                              f"scores {wanted}-channel images, but {model_name} makes "
                              f"{image_channels}-channel ones; for RGB images use metric=fid")
        if definition.network not in networks:
            networks[definition.network] = build_network(
                definition.network, files.get(definition.network), precision, device)
        network = networks[definition.network]
        statistic = build_statistic(definition.statistic, network, reference, cache_dir, device)
        metrics.append(Metric(definition, network, statistic, reference))
    return Scorer(metrics, device)
