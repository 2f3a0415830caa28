"""Build what a command needs from the validated config: device, model, FID scorer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from ..configuration.build import Settings
from ..metrics.build import build_network, check_channels
from ..metrics.build import build_scorer as build_metrics
from ..metrics.registry import network_of
from ..metrics.scorer import Scorer
from ..models import LoadedModel, load_model
from ..samplers.spec import SamplerSpec, fit_to_network
from .acceleration import accelerate
from .precision import Precision, channels_last_wanted
from .settings import Execution, resolve_device


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


def build_extractor(settings: Settings, device: str) -> torch.nn.Module:
    """The feature network of the search metric, on ``device``, in ``precision.features``."""
    network = network_of(settings.metric.name)
    return build_network(network.name, settings.metric.files.get(network.name),
                         settings.execution.features, device)


def check_metric_fits(settings: Settings, model: LoadedModel) -> None:
    """The search metric must score the model's images (channels); ConfigError otherwise."""
    check_channels(settings.metric.name, "metric.name", model.denoiser.image_channels,
                   model.name)


def build_scorer(settings: Settings, device: str, model: LoadedModel | None = None,
                 names: Sequence[str] | None = None) -> Scorer:
    """A scorer of ``model``'s images against ``metric.reference`` (statistics cached).

    ``names``: the metrics it holds; by default a sweep's search metric, other objective and
    confirm metrics, and any other command's search metric alone.
    """
    metric = settings.metric
    if names is None:
        search = settings.search
        names = (metric.used(search.objectives, search.confirm_top_k > 0)
                 if search is not None else (metric.name,))
    return build_metrics(list(names), metric.files, metric.reference,
                         settings.out_dir / "cache" / "reference", device,
                         settings.execution.features,
                         model.denoiser.image_channels if model is not None else None,
                         model.name if model is not None else "the model")


def precision_provenance(execution: Execution) -> dict:
    """How the images were computed: network and sampler dtypes, where the noise was drawn.

    The device type counts: latents are drawn there, so CUDA and CPU images of a seed differ.
    """
    return {"network": execution.network, "sampler": execution.sampler,
            "noise_device": resolve_device(execution.device).split(":")[0]}


def score_key(settings: Settings, model: LoadedModel) -> dict:
    """What every score of a run's images depends on besides schedule, sampler and seeds."""
    from omegaconf import OmegaConf

    from .. import __version__

    section = OmegaConf.to_container(settings.model.section, resolve=True)
    section.pop("trust_pickle", None)  # how a file may be read, not what it holds
    return {"version": __version__, "model": model.name, "model_sha256": model.sha256,
            "model_settings": section, "precision": precision_provenance(settings.execution)}
