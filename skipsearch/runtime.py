"""Build what a command needs from the validated config: device, model, FID scorer."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from .acceleration import accelerate
from .config import resolve_device
from .errors import ConfigError
from .metrics.features import DIGITS_CLASSIFIER, FeatureExtractor, digits_feature_extractor
from .metrics.fid import FIDScorer
from .metrics.inception import InceptionFeatures, inception_features
from .metrics.reference import cached_reference
from .models import LoadedModel, load_model
from .precision import Precision, channels_last_wanted


def setup_device(cfg: DictConfig) -> str:
    """The device to run on, with CPU threads left at torch's default."""
    device = resolve_device(str(cfg.device))
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    return device


def precision_policy(cfg: DictConfig, device: str) -> Precision:
    """The ``precision`` block as a Precision, channels_last resolved for ``device``."""
    network = str(cfg.precision.network)
    layout = str(cfg.precision.channels_last).lower()
    return Precision(network, str(cfg.precision.sampler),
                     channels_last_wanted(layout, device, network))


def build_model(cfg: DictConfig, device: str) -> LoadedModel:
    """The denoiser of the ``model`` group on ``device``, with the precision and speed-ups."""
    model = load_model(cfg.model, device)
    return accelerate(model, precision_policy(cfg, device), cfg.compile, bool(cfg.cuda_graph))


def build_extractor(cfg: DictConfig, device: str) -> FeatureExtractor | InceptionFeatures:
    """The FID feature network of the ``metric`` group on ``device``."""
    if cfg.metric.feature == "inception":
        extractor = inception_features(Path(cfg.metric.inception_weights))
    else:
        path = Path(cfg.metric.weights) if cfg.metric.get("weights") else DIGITS_CLASSIFIER
        extractor = digits_feature_extractor(path, "metric.weights")
    precision = str(cfg.precision.features)
    if precision != "fp32":  # other features, other statistics: named apart, cached apart
        extractor.precision, extractor.name = precision, f"{extractor.name}-{precision}"
    return extractor.to(device)


def check_metric_fits(model: LoadedModel,
                      extractor: FeatureExtractor | InceptionFeatures) -> None:
    """The feature network must take the model's images (channels); ConfigError otherwise."""
    wanted, made = extractor.img_channels, model.denoiser.image_channels
    if made != wanted:
        raise ConfigError("metric.feature", extractor.name,
                          f"scores {wanted}-channel images, but {model.name} makes {made}-channel "
                          "ones; for RGB images use metric=inception_fid")


def build_scorer(cfg: DictConfig, device: str, model: LoadedModel) -> FIDScorer:
    """FID of ``model``'s images against the cached statistics of ``metric.reference``."""
    extractor = build_extractor(cfg, device)
    check_metric_fits(model, extractor)
    reference = cached_reference(str(cfg.metric.reference), extractor,
                                 Path(cfg.out_dir) / "cache" / "reference")
    return FIDScorer(extractor, reference, device)


def metric_provenance(scorer: FIDScorer, cfg: DictConfig) -> dict:
    """How FID was measured: feature network (with hash) and reference data set."""
    return {"metric": "fid", "feature_extractor": scorer.extractor.name,
            "feature_sha256": scorer.extractor.sha256, "reference": str(cfg.metric.reference)}


def precision_provenance(cfg: DictConfig) -> dict:
    """How the images were computed: network and sampler dtypes, where the noise was drawn.

    The device type counts: latents are drawn there, so CUDA and CPU images of a seed differ.
    """
    return {"network": str(cfg.precision.network), "sampler": str(cfg.precision.sampler),
            "noise_device": resolve_device(str(cfg.device)).split(":")[0]}
