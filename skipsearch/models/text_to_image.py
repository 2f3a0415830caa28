"""Stable Diffusion (1.x / 2.x) as a Denoiser: prompts chosen by seed, guidance, VAE decoding.

Image k is drawn with prompt ``prompts[k % len(prompts)]``; with ``guidance_scale`` w != 1,
D = D(x; sigma, empty) + w (D(x; sigma, prompt) - D(x; sigma, empty)), both passes in one UNet
batch. The sampler integrates latents; ``decode`` maps them through the VAE to RGB in [-1, 1].
Every component is loaded from a local pipeline folder (unet/, vae/, text_encoder/, tokenizer/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..configuration.errors import ConfigError
from .denoiser import Denoiser
from .diffusers_unet import DiffusersConditionDenoiser, load_diffusers_condition_unet
from .prompts import read_prompts  # noqa: F401  (the loaders' name for it, as before)


class TextToImageDenoiser(Denoiser):
    """A conditional UNet with its text encoder, tokenizer and VAE."""

    def __init__(self, inner: DiffusersConditionDenoiser, text_encoder: nn.Module,
                 tokenizer: Any, vae: nn.Module, prompts: Sequence[str] = (),
                 guidance_scale: float = 1.0, negative_prompt: str = "") -> None:
        super().__init__()
        self.inner, self.text_encoder, self.vae = inner, text_encoder, vae
        self.tokenizer = tokenizer
        self.prompts, self.negative_prompt = list(prompts), negative_prompt
        self.guidance_scale = float(guidance_scale)
        self.sigma_min, self.sigma_max = inner.sigma_min, inner.sigma_max
        self.sigma_range = inner.sigma_range
        self.img_channels, self.img_resolution = inner.img_channels, inner.img_resolution
        self.label_dim = 0
        self.skips = [replace(p, module_name="inner." + p.module_name) for p in inner.skips]
        self._embeddings: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed(self, prompt: str) -> torch.Tensor:
        """The conditioning of one prompt, (1, length, dim), cached (``encode`` computes it)."""
        if prompt not in self._embeddings:
            self._embeddings[prompt] = self.encode(prompt)
        return self._embeddings[prompt]

    def encode(self, prompt: str) -> torch.Tensor:
        """Text-encoder hidden states of one prompt, (1, length, dim)."""
        ids = self.tokenizer(prompt, padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length,
                             return_tensors="pt").input_ids
        device = next(self.text_encoder.parameters()).device
        return self.text_encoder(ids.to(device))[0]

    def unconditional(self) -> torch.Tensor:
        """The conditioning of guidance's unconditional pass, (1, length, dim)."""
        return self.embed(self.negative_prompt)

    def unet_condition(self, condition: torch.Tensor) -> Any:
        """What the UNet adapter takes for a batch of conditioning: here the embeddings."""
        return condition

    def prompts_for(self, seeds: Sequence[int]) -> list[str]:
        """The prompt of each seed: ``prompts[seed % len(prompts)]``."""
        if not self.prompts:
            raise ConfigError("model.prompts", None, "text-to-image sampling needs prompts: "
                              "model.prompts=FILE with one prompt a line")
        return [self.prompts[int(s) % len(self.prompts)] for s in seeds]

    def condition_for(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> Any:
        """Embeddings of prompt ``seed % len(prompts)`` for each seed, (B, length, dim)."""
        rows = [self.embed(prompt) for prompt in self.prompts_for(seeds)]
        return torch.cat(rows).to(device)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor,
                class_labels: Any = None) -> torch.Tensor:
        """Guided D(x; sigma): unconditional and prompt passes in one batch when w != 1."""
        if self.guidance_scale == 1.0:
            return self.inner(x, sigma, self.unet_condition(class_labels))
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(x.shape[0])
        empty = self.unconditional().to(x.device).expand_as(class_labels)
        both = self.inner(torch.cat([x, x]), torch.cat([sigma, sigma]),
                          self.unet_condition(torch.cat([empty, class_labels])))
        d_empty, d_prompt = both.chunk(2)
        return d_empty + self.guidance_scale * (d_prompt - d_empty)

    @property
    def can_guide(self) -> bool:
        """The empty (negative) prompt is the null condition: guidance always applies."""
        return True

    @property
    def image_channels(self) -> int:
        """Channels of the VAE's output images."""
        return int(self.vae.config.out_channels)

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents through the VAE decoder to RGB in [-1, 1]."""
        scale = float(getattr(self.vae.config, "scaling_factor", 0.18215))
        images = self.vae.decode((x / scale).to(self.vae.dtype)).sample
        return images.to(torch.float32)


def load_text_to_image(path: str | Path, scheduler_config, prediction_type: str | None,
                       prompts: Sequence[str] = (), guidance_scale: float = 1.0,
                       negative_prompt: str = "") -> TextToImageDenoiser:
    """A local Stable Diffusion pipeline folder as a TextToImageDenoiser."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    inner = load_diffusers_condition_unet(path, scheduler_config, prediction_type, "unet")
    try:
        vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True)
        encoder = CLIPTextModel.from_pretrained(str(path), subfolder="text_encoder",
                                                local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer",
                                                  local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError("model.path", str(path), "needs vae/, text_encoder/ and tokenizer/ "
                          f"folders of a Stable Diffusion pipeline ({err})") from None
    return TextToImageDenoiser(inner, encoder.eval().requires_grad_(False), tokenizer,
                               vae.eval().requires_grad_(False), prompts, guidance_scale,
                               negative_prompt)
