"""Load the model of the ``model`` config group: one loader per kind, a LoadedModel back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..configuration.errors import ConfigError
from ..configuration.weights import content_sha256
from ..execution.precision import Precision
from ..tuning.skips import SkipHooks
from .denoiser import Denoiser
from .digits import DIGITS_WEIGHTS, load_digits_denoiser
from .edm import load_edm_denoiser
from .kinds import MODEL_KINDS


@dataclass
class LoadedModel:
    """A ready denoiser, its name and the SHA-256 of the file (or folder) it came from.

    ``precision``, ``hooks`` (registered once, loaded per schedule) and ``network`` (a graphed
    call of the denoiser) are set by ``acceleration.accelerate``.
    """

    denoiser: Denoiser
    name: str
    weights: Path
    sha256: str
    precision: Precision = field(default_factory=Precision)
    hooks: SkipHooks | None = None
    network: Callable[..., torch.Tensor] | None = None


def _digits(cfg) -> tuple[Denoiser, Path]:
    """The bundled digits UNet, or another file of its architecture."""
    path = Path(cfg.weights) if cfg.get("weights") else DIGITS_WEIGHTS
    return load_digits_denoiser(path, "model.weights"), path


def _edm(cfg) -> tuple[Denoiser, Path]:
    """An NVlabs EDM snapshot pickle (needs model.trust_pickle=true)."""
    path = Path(cfg.path)
    return load_edm_denoiser(path, bool(cfg.get("trust_pickle", False))), path


def _edm2(cfg) -> tuple[Denoiser, Path]:
    """An NVlabs EDM2 snapshot pickle; latent ones decode through model.vae."""
    from .edm2 import load_edm2_denoiser

    path = Path(cfg.path)
    trust = bool(cfg.get("trust_pickle", False))
    return load_edm2_denoiser(path, trust, cfg.get("vae"), cfg.get("guide_path"),
                              float(cfg.get("guidance_scale", 1.0))), path


def _diffusers_unet2d(cfg) -> tuple[Denoiser, Path]:
    """A local diffusers UNet2DModel folder on its DDPM noise schedule."""
    from .diffusers_unet import load_diffusers_unet2d

    path = Path(cfg.path)
    scheduler = OmegaConf.to_container(cfg.scheduler) if cfg.get("scheduler") else path
    return load_diffusers_unet2d(path, scheduler, cfg.get("prediction_type")), path


def _stable_diffusion(cfg) -> tuple[Denoiser, Path]:
    """A local Stable Diffusion pipeline folder: UNet, text encoder, tokenizer and VAE."""
    from .prompts import read_prompts
    from .text_to_image import load_text_to_image

    path = Path(cfg.path)
    scheduler = (OmegaConf.to_container(cfg.scheduler) if cfg.get("scheduler")
                 else path / "scheduler")
    prompts = read_prompts(cfg.prompts) if cfg.get("prompts") else ()
    denoiser = load_text_to_image(path, scheduler, cfg.get("prediction_type"), prompts,
                                  float(cfg.get("guidance_scale", 1.0)),
                                  str(cfg.get("negative_prompt") or ""))
    return denoiser, path


def _sdxl(cfg) -> tuple[Denoiser, Path]:
    """A local SDXL base pipeline folder: UNet, both text encoders and tokenizers, VAE."""
    from .sdxl import load_sdxl, sdxl_settings

    settings = sdxl_settings(cfg)  # every key checked before anything is read
    path = Path(cfg.path)
    return load_sdxl(path, **settings), path


def _layout(cfg) -> dict:
    """The UNet layout settings given in the model group (guided-diffusion's flags)."""
    from .guided_diffusion import LAYOUT_KEYS

    return {k: OmegaConf.to_object(cfg[k]) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in LAYOUT_KEYS if k in cfg}


def _adm(cfg) -> tuple[Denoiser, Path]:
    """A guided-diffusion UNet state dict (OpenAI's ADM checkpoints)."""
    from .guided_diffusion import load_adm

    path = Path(cfg.path)
    return load_adm(path, _layout(cfg), str(cfg.noise_schedule), int(cfg.diffusion_steps)), path


def _ldm(cfg) -> tuple[Denoiser, Path]:
    """A CompVis latent-diffusion checkpoint and its first stage (diffusers folder)."""
    from .guided_diffusion import load_ldm

    path = Path(cfg.path)
    denoiser = load_ldm(path, _layout(cfg), cfg.get("autoencoder"), float(cfg.latent_scale),
                        float(cfg.linear_start), float(cfg.linear_end), int(cfg.timesteps),
                        float(cfg.guidance_scale), int(cfg.num_classes), cfg.get("null_class"),
                        bool(cfg.get("use_ema", True)))
    return denoiser, path


def _uvit(cfg) -> tuple[Denoiser, Path]:
    """A U-ViT state dict (pixel or latent), with the VAE folder of latent models."""
    from .uvit import load_uvit

    path = Path(cfg.path)
    denoiser = load_uvit(path, int(cfg.num_heads), str(cfg.schedule), cfg.get("autoencoder"),
                         float(cfg.latent_scale), float(cfg.guidance_scale),
                         int(cfg.num_classes), cfg.get("null_class"))
    return denoiser, path


# One loader per kind of kinds.MODEL_KINDS (the list the config check reads).
LOADERS: dict[str, Callable[..., tuple[Denoiser, Path]]] = {
    "digits": _digits, "edm": _edm, "edm2": _edm2, "diffusers_unet2d": _diffusers_unet2d,
    "stable_diffusion": _stable_diffusion, "sdxl": _sdxl, "adm": _adm, "ldm": _ldm,
    "uvit": _uvit,
}


def load_model(cfg, device: torch.device | str = "cpu") -> LoadedModel:
    """Load the model described by the ``model`` config group onto ``device``."""
    if cfg.kind not in LOADERS:
        raise ConfigError("model.kind", cfg.kind, f"choose one of {', '.join(MODEL_KINDS)}")
    denoiser, path = LOADERS[cfg.kind](cfg)
    return LoadedModel(denoiser.to(device), str(cfg.name), path, content_sha256(path))

