"""Adapters for diffusers UNets: their skips, and an EDM-form Denoiser on a discrete DDPM schedule.

Every up block of a diffusers ``UNet2DModel`` / ``UNet2DConditionModel`` pops one encoder
residual per resnet and feeds ``cat([h, residual])`` to that resnet, so each decoder resnet is
one skip point; the skip channels trail the input. Skips are listed in the order the decoder
consumes them: ``up_blocks.0.resnets.0`` (next to the mid block) is index 0.

The UNet was trained on a discrete VP schedule ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``.
In EDM form ``x = x0 + sigma n`` with ``sigma_t = sqrt((1 - abar_t) / abar_t)``, so the UNet input
is ``c_in x`` with ``c_in = 1 / sqrt(sigma^2 + 1)`` and its timestep is the (fractional) t whose
sigma matches, interpolated in log sigma between the two neighbouring discrete sigmas.

Nothing here imports diffusers at module level; only the ``load_*`` functions need it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..configuration.errors import ConfigError
from ..tuning.skips import SkipPoint
from .denoiser import Denoiser

BETA_SCHEDULES = ("linear", "scaled_linear")
# diffusers' DDPMScheduler defaults, used for keys a scheduler config leaves out.
SCHEDULER_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
                      "beta_schedule": "linear", "prediction_type": "epsilon"}
Condition = torch.Tensor | Mapping[str, Any] | None


# --- skips -------------------------------------------------------------------------------------


def _out_channels(block: nn.Module) -> int:
    """Channels a UNet block outputs: its last resnet's (up- and downsamplers keep them)."""
    return int(block.resnets[-1].out_channels)


def _decoder_entry_channels(unet: nn.Module) -> int:
    """Channels of the features entering the first up block: the mid block's (or encoder's)."""
    mid = getattr(unet, "mid_block", None)
    return _out_channels(mid if mid is not None else unet.down_blocks[-1])


def sample_resolution(unet: nn.Module) -> int:
    """The UNet's input resolution from its config (height if a pair; 0 if not given)."""
    size = getattr(unet.config, "sample_size", None)
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size or 0)


def _up_blocks(unet: nn.Module) -> nn.ModuleList:
    """The UNet's decoder blocks (``up_blocks``); TypeError for a model without them."""
    blocks = getattr(unet, "up_blocks", None)
    if blocks is None:
        raise TypeError(f"{type(unet).__name__} has no up_blocks; expected a diffusers UNet")
    return blocks


def _levels(unet: nn.Module) -> list[int]:
    """Resolution level of each up block's input: upsamplers still ahead of it (0 = full)."""
    has_up = [getattr(b, "upsamplers", None) is not None for b in _up_blocks(unet)]
    return [sum(has_up[i:]) for i in range(len(has_up))]


def find_diffusers_skips(unet: nn.Module, prefix: str = "") -> list[SkipPoint]:
    """One SkipPoint per up-block resnet of a diffusers UNet, in the decoder's order of use."""
    size, levels, points = sample_resolution(unet), _levels(unet), []
    h_channels = _decoder_entry_channels(unet)
    for i, block in enumerate(_up_blocks(unet)):
        if not hasattr(block, "resnets"):
            continue
        for j, resnet in enumerate(block.resnets):
            name = f"{prefix}up_blocks.{i}.resnets.{j}"
            in_channels = int(resnet.in_channels)
            skip_channels = in_channels - h_channels
            if skip_channels <= 0:
                raise TypeError(f"{name} takes {in_channels} channels, no more than the "
                                f"{h_channels} decoder channels: it carries no skip")
            points.append(SkipPoint(len(points), levels[i], size >> levels[i], skip_channels,
                                    in_channels, name))
            h_channels = int(resnet.out_channels)
    if not points:
        raise TypeError(f"{type(unet).__name__} has no up-block resnets carrying skips")
    return points


# --- noise schedule ----------------------------------------------------------------------------


def scheduler_settings(config: Mapping | str | Path, key: str = "model.scheduler") -> dict:
    """A scheduler config dict with defaults filled in; a path may name the JSON or its folder."""
    if not isinstance(config, Mapping):
        path = Path(config)
        path = path / "scheduler_config.json" if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(key, str(config), "no such file; give a scheduler config dict, a "
                              "scheduler_config.json or the folder that holds it")
        config = json.loads(path.read_text())
    if config.get("trained_betas") is not None:
        raise ConfigError(f"{key}.trained_betas", "[...]", "trained betas are not supported; "
                          f"use beta_schedule {' or '.join(BETA_SCHEDULES)}")
    return {**SCHEDULER_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}


def alphas_cumprod_from_config(config: Mapping, key: str = "model.scheduler") -> torch.Tensor:
    """abar_t (float64) of a DDPM beta schedule: ``linear`` or ``scaled_linear``."""
    cfg = scheduler_settings(config, key)
    n, start, end = int(cfg["num_train_timesteps"]), cfg["beta_start"], cfg["beta_end"]
    if cfg["beta_schedule"] == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    elif cfg["beta_schedule"] == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    else:
        raise ConfigError(f"{key}.beta_schedule", cfg["beta_schedule"],
                          f"choose one of {', '.join(BETA_SCHEDULES)}")
    return torch.cumprod(1.0 - betas, dim=0)


def vp_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t) of every discrete timestep (float64, increasing)."""
    abar = torch.as_tensor(alphas_cumprod).to(torch.float64)
    return ((1.0 - abar) / abar).sqrt()


def timestep_to_sigma(t: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """Sigma at (fractional) timesteps: linear interpolation of log sigma between neighbours."""
    t = torch.as_tensor(t).to(log_sigmas).clamp(0, len(log_sigmas) - 1)
    low = t.floor().long().clamp(max=len(log_sigmas) - 2)
    w = t - low
    return ((1 - w) * log_sigmas[low] + w * log_sigmas[low + 1]).exp()


def sigma_to_timestep(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """The fractional timestep of each sigma (k-diffusion's interpolation in log sigma)."""
    log_sigma = torch.as_tensor(sigma).to(log_sigmas).log()
    high = torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(log_sigmas) - 1)
    low, high_ls = log_sigmas[high - 1], log_sigmas[high]
    w = ((log_sigma - low) / (high_ls - low)).clamp(0, 1)
    return high - 1 + w


# --- prediction types --------------------------------------------------------------------------


class Prediction:
    """What the UNet predicts; subclasses override ``denoised`` only."""

    name = ""

    def denoised(self, x: torch.Tensor, sigma: torch.Tensor, output: torch.Tensor
                 ) -> torch.Tensor:
        """D(x; sigma) from the EDM-scaled input x, sigma (B, 1, 1, 1) and the UNet output."""
        raise NotImplementedError


class EpsilonPrediction(Prediction):
    """The UNet predicts the noise eps: x = x0 + sigma eps, so D = x - sigma eps."""

    name = "epsilon"

    def denoised(self, x: torch.Tensor, sigma: torch.Tensor, output: torch.Tensor
                 ) -> torch.Tensor:
        """D = x - sigma eps."""
        return x - sigma * output


class VPrediction(Prediction):
    """The UNet predicts v = alpha eps - sigma_vp x0 (alpha = 1/sqrt(s^2+1), sigma_vp = s alpha).

    With x_vp = alpha x0 + sigma_vp eps = alpha x: x0 = alpha x_vp - sigma_vp v
    = x / (s^2 + 1) - s v / sqrt(s^2 + 1).
    """

    name = "v_prediction"

    def denoised(self, x: torch.Tensor, sigma: torch.Tensor, output: torch.Tensor
                 ) -> torch.Tensor:
        """D = x / (sigma^2 + 1) - sigma v / sqrt(sigma^2 + 1)."""
        var = sigma**2 + 1
        return x / var - sigma * output / var.sqrt()


PREDICTIONS: dict[str, type[Prediction]] = {p.name: p for p in (EpsilonPrediction, VPrediction)}


def prediction_for(prediction_type: str, key: str = "model.prediction_type") -> Prediction:
    """The Prediction of a diffusers ``prediction_type`` name."""
    if prediction_type not in PREDICTIONS:
        raise ConfigError(key, prediction_type, f"choose one of {', '.join(PREDICTIONS)}")
    return PREDICTIONS[prediction_type]()


# --- denoisers ---------------------------------------------------------------------------------


class DiffusersDenoiser(Denoiser):
    """D(x; sigma) in EDM form around a diffusers UNet; subclasses override ``call_unet``."""

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor,
                 prediction_type: str = "epsilon") -> None:
        super().__init__()
        self.unet = unet
        self.prediction = prediction_for(prediction_type)
        sigmas = vp_sigmas(alphas_cumprod)
        self.log_sigmas = sigmas.log()  # float64, a plain attribute: .half() leaves it alone
        self.sigma_min, self.sigma_max = float(sigmas[0]), float(sigmas[-1])
        self.sigma_range = (self.sigma_min, self.sigma_max)  # the training schedule's levels
        self.img_channels = int(unet.config.in_channels)
        self.img_resolution = sample_resolution(unet)
        self.label_dim = 0
        self.skips = find_diffusers_skips(unet, prefix="unet.")

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """The UNet timestep (fractional, float64) of noise level ``sigma``."""
        return sigma_to_timestep(sigma, self.log_sigmas.to(torch.as_tensor(sigma).device))

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The noise level (float64) of UNet timestep ``t``."""
        return timestep_to_sigma(t, self.log_sigmas.to(torch.as_tensor(t).device))

    def call_unet(self, x: torch.Tensor, t: torch.Tensor, condition: Condition) -> torch.Tensor:
        """The raw UNet output for VP input ``x`` at timesteps ``t`` (B,)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sigma: torch.Tensor,
                class_labels: Condition = None) -> torch.Tensor:
        """D(x; sigma): the prediction's x0 from UNet(c_in x, t(sigma)), c_in = 1/sqrt(s^2+1)."""
        level = torch.as_tensor(sigma, device=x.device).flatten()
        # The timestep from the level in float64, then float32 (see EpsDenoiser.forward).
        t = self.sigma_to_t(level.to(torch.float64)).to(torch.float32).expand(x.shape[0])
        sigma = level.to(torch.float32).reshape(-1, 1, 1, 1)
        x32 = x.to(torch.float32)
        c_in = 1 / (sigma**2 + 1).sqrt()
        out = self.call_unet((c_in * x32).to(self.unet.dtype), t, class_labels)
        # A UNet with learned variance outputs [prediction, variance]: keep the prediction.
        out = out[:, : self.img_channels].to(torch.float32)
        return self.prediction.denoised(x32, sigma, out)


def class_indices(class_labels: torch.Tensor | None) -> torch.Tensor | None:
    """Integer class labels from one-hot rows (the samplers' form); other labels unchanged."""
    if class_labels is not None and class_labels.is_floating_point() and class_labels.ndim == 2:
        return class_labels.argmax(dim=1)
    return class_labels


class DiffusersUNet2DDenoiser(DiffusersDenoiser):
    """A ``UNet2DModel``; class-conditional (one-hot or integer labels) if it has class embeds."""

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor,
                 prediction_type: str = "epsilon") -> None:
        super().__init__(unet, alphas_cumprod, prediction_type)
        self.label_dim = int(getattr(unet.config, "num_class_embeds", None) or 0)

    def call_unet(self, x: torch.Tensor, t: torch.Tensor, condition: Condition) -> torch.Tensor:
        """UNet2DModel(x, t, class_labels) when it has class embeds, else UNet2DModel(x, t)."""
        labels = class_indices(condition) if self.label_dim else None
        return self.unet(x, t, class_labels=labels, return_dict=False)[0]


class DiffusersConditionDenoiser(DiffusersDenoiser):
    """A ``UNet2DConditionModel``; the ``class_labels`` argument carries its conditioning.

    The conditioning is either ``encoder_hidden_states`` of shape
    (batch, sequence_length, cross_attention_dim), e.g. CLIP text embeddings (B, 77, 768) for
    Stable Diffusion 1.x, or a dict of UNet keyword arguments holding ``encoder_hidden_states``
    and any others (``added_cond_kwargs`` for SDXL, ``class_labels``). When a call gives none,
    ``condition`` from construction (shape (1 or B, sequence_length, cross_attention_dim), e.g.
    the empty prompt's embedding) is used, broadcast to the batch. ``label_dim`` is 0.
    """

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor,
                 prediction_type: str = "epsilon", condition: torch.Tensor | None = None) -> None:
        super().__init__(unet, alphas_cumprod, prediction_type)
        self.condition = condition

    def unet_kwargs(self, condition: Condition, batch: int) -> dict[str, Any]:
        """The UNet keyword arguments of a call's conditioning (or the default one)."""
        if condition is None:
            if self.condition is None:
                raise ValueError("UNet2DConditionModel needs encoder_hidden_states: pass them as "
                                 "class_labels or give `condition` to the denoiser")
            condition = self.condition.expand(batch, *self.condition.shape[1:])
        kwargs = dict(condition) if isinstance(condition, Mapping) else {
            "encoder_hidden_states": condition}
        if "encoder_hidden_states" not in kwargs:
            raise ValueError("the conditioning dict must hold encoder_hidden_states")
        return kwargs

    def call_unet(self, x: torch.Tensor, t: torch.Tensor, condition: Condition) -> torch.Tensor:
        """UNet2DConditionModel(x, t, encoder_hidden_states=..., **other conditioning)."""
        kwargs = self.unet_kwargs(condition, x.shape[0])
        states = kwargs["encoder_hidden_states"]
        kwargs["encoder_hidden_states"] = states.to(device=x.device, dtype=x.dtype)
        return self.unet(x, t, **kwargs, return_dict=False)[0]


# --- loading -----------------------------------------------------------------------------------


def _from_local(model_class: type, path: str | Path, subfolder: str | None) -> nn.Module:
    """``model_class.from_pretrained`` of a local folder only; ConfigError if it cannot."""
    folder = Path(path) / subfolder if subfolder else Path(path)
    if not folder.is_dir():
        raise ConfigError("model.path", str(path), "no such folder; give a local folder with the "
                          "UNet's config.json and weights (nothing is downloaded)")
    try:
        unet = model_class.from_pretrained(str(path), subfolder=subfolder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError("model.path", str(path), f"cannot load a {model_class.__name__} "
                          f"from it ({err})") from None
    return unet.eval().requires_grad_(False)


def _schedule(scheduler_config: Mapping | str | Path, prediction_type: str | None
              ) -> tuple[torch.Tensor, str]:
    """abar_t and the prediction type (the argument, else the scheduler config's)."""
    cfg = scheduler_settings(scheduler_config)
    ptype = prediction_type or cfg["prediction_type"]
    prediction_for(ptype)
    return alphas_cumprod_from_config(cfg), ptype


def load_diffusers_unet2d(path: str | Path, scheduler_config: Mapping | str | Path,
                          prediction_type: str | None = None, subfolder: str | None = None
                          ) -> DiffusersUNet2DDenoiser:
    """A local diffusers ``UNet2DModel`` folder as an EDM-form denoiser."""
    from diffusers import UNet2DModel

    unet = _from_local(UNet2DModel, path, subfolder)
    alphas_cumprod, ptype = _schedule(scheduler_config, prediction_type)
    return DiffusersUNet2DDenoiser(unet, alphas_cumprod, ptype)


def load_diffusers_condition_unet(path: str | Path, scheduler_config: Mapping | str | Path,
                                  prediction_type: str | None = None,
                                  subfolder: str | None = None,
                                  condition: torch.Tensor | None = None
                                  ) -> DiffusersConditionDenoiser:
    """A local diffusers ``UNet2DConditionModel`` folder (e.g. Stable Diffusion's unet/)."""
    from diffusers import UNet2DConditionModel

    unet = _from_local(UNet2DConditionModel, path, subfolder)
    alphas_cumprod, ptype = _schedule(scheduler_config, prediction_type)
    return DiffusersConditionDenoiser(unet, alphas_cumprod, ptype, condition)
