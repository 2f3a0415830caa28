"""Build what a command needs from the validated config: device, model, FID scorer."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from .config import resolve_device
from .metrics.features import DIGITS_CLASSIFIER, FeatureExtractor, digits_feature_extractor
from .metrics.fid import FIDScorer
from .metrics.reference import cached_reference
from .models import LoadedModel, load_model


def setup_device(cfg: DictConfig) -> str:
    """The device to run on, with CPU threads left at torch's default."""
    device = resolve_device(str(cfg.device))
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    return device


def build_model(cfg: DictConfig, device: str) -> LoadedModel:
    """The denoiser of the ``model`` group on ``device``."""
    return load_model(cfg.model, device)


def build_extractor(cfg: DictConfig, device: str) -> FeatureExtractor:
    """The FID feature network of the ``metric`` group on ``device``."""
    path = Path(cfg.metric.weights) if cfg.metric.get("weights") else DIGITS_CLASSIFIER
    return digits_feature_extractor(path, "metric.weights").to(device)


def build_scorer(cfg: DictConfig, device: str) -> FIDScorer:
    """FID against the cached reference statistics of ``metric.reference``."""
    extractor = build_extractor(cfg, device)
    reference = cached_reference(str(cfg.metric.reference), extractor,
                                 Path(cfg.out_dir) / "cache" / "reference")
    return FIDScorer(extractor, reference, device)


def metric_provenance(scorer: FIDScorer, cfg: DictConfig) -> dict:
    """How FID was measured: feature network (with hash) and reference data set."""
    return {"metric": "fid", "feature_extractor": scorer.extractor.name,
            "feature_sha256": scorer.extractor.sha256, "reference": str(cfg.metric.reference)}
