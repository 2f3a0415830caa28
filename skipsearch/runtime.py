"""Build what a command needs from the validated config: device, model, FID scorer."""

from __future__ import annotations

from dataclasses import replace

import torch

from .acceleration import accelerate
from .config import Settings
from .errors import ConfigError
from .execution import Execution, resolve_device
from .metrics.features import DIGITS_CLASSIFIER, FeatureExtractor, digits_feature_extractor
from .metrics.fid import FIDScorer
from .metrics.inception import InceptionFeatures, inception_features
from .metrics.reference import cached_reference
from .metrics.settings import MetricSettings
from .models import LoadedModel, load_model
from .precision import Precision, channels_last_wanted
from .samplers.spec import SamplerSpec, fit_to_network


def setup_device(settings: Settings) -> str:
    """The device to run on, with CPU threads left at torch's default."""
    device = resolve_device(settings.execution.device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    return device


def precision_policy(execution: Execution, device: str) -> Precision:
    """The precision names as a Precision, channels_last resolved for ``device``."""
    return Precision(execution.network, execution.sampler,
                     channels_last_wanted(execution.channels_last, device, execution.network))


def build_model(settings: Settings, device: str) -> LoadedModel:
    """The denoiser of the ``model`` group on ``device``, with the precision and speed-ups."""
    execution = settings.execution
    model = load_model(settings.model.section, device)
    return accelerate(model, precision_policy(execution, device), execution.compile,
                      execution.cuda_graph)


def fit_sampler(spec: SamplerSpec, model: LoadedModel, announce: bool = True) -> SamplerSpec:
    """``spec`` narrowed to the noise levels ``model``'s network was trained on (EDM's rule)."""
    return fit_to_network(spec, getattr(model.denoiser, "sigma_range", None), announce)


def fit_settings(settings: Settings, model: LoadedModel) -> Settings:
    """``settings`` with the sampler and the sweep's samplers fitted to ``model`` (logged once).

    Called once a runner has its model, before anything reads the sampler: the fitted levels
    are what the images use, what a study records and what exports write.
    """
    if settings.sampler is None:
        return settings
    sampler = fit_sampler(settings.sampler, model)
    samplers = {name: fit_sampler(spec, model, announce=False)
                for name, spec in settings.samplers.items()}
    return replace(settings, sampler=sampler, samplers=samplers)


def build_extractor(settings: Settings, device: str) -> FeatureExtractor | InceptionFeatures:
    """The FID feature network of the ``metric`` group on ``device``, in ``precision.features``."""
    metric, precision = settings.metric, settings.execution.features
    if metric.feature == "inception":
        extractor = inception_features(metric.inception_weights)
    else:
        extractor = digits_feature_extractor(metric.weights or DIGITS_CLASSIFIER, "metric.weights")
    if precision != "fp32":  # other features, other statistics: named apart, cached apart
        extractor.precision = precision
        extractor.name = f"{extractor.name}-{precision}"
    return extractor.to(device)


def check_metric_fits(model: LoadedModel,
                      extractor: FeatureExtractor | InceptionFeatures) -> None:
    """The feature network must take the model's images (channels); ConfigError otherwise."""
    wanted, made = extractor.img_channels, model.denoiser.image_channels
    if made != wanted:
        raise ConfigError("metric.feature", extractor.name,
                          f"scores {wanted}-channel images, but {model.name} makes {made}-channel "
                          "ones; for RGB images use metric=inception_fid")


def build_scorer(settings: Settings, device: str, model: LoadedModel) -> FIDScorer:
    """FID of ``model``'s images against the cached statistics of ``metric.reference``."""
    extractor = build_extractor(settings, device)
    check_metric_fits(model, extractor)
    reference = cached_reference(settings.metric.reference, extractor,
                                 settings.out_dir / "cache" / "reference")
    return FIDScorer(extractor, reference, device)


def metric_provenance(scorer: FIDScorer, metric: MetricSettings) -> dict:
    """How FID was measured: feature network (with hash) and reference data set."""
    return {"metric": "fid", "feature_extractor": scorer.extractor.name,
            "feature_sha256": scorer.extractor.sha256, "reference": metric.reference}


def precision_provenance(execution: Execution) -> dict:
    """How the images were computed: network and sampler dtypes, where the noise was drawn.

    The device type counts: latents are drawn there, so CUDA and CPU images of a seed differ.
    """
    return {"network": execution.network, "sampler": execution.sampler,
            "noise_device": resolve_device(execution.device).split(":")[0]}
