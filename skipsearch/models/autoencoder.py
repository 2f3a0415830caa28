"""Latent decoders: a local diffusers ``AutoencoderKL`` or ``VQModel`` folder.

Latent models sample ``z * scale`` and decode ``z`` (LDM's VQ first stage: scale 1, decoding
quantizes as LDM's ``VQModelInterface.decode`` does; Stable Diffusion's KL autoencoder, used by
U-ViT's latent models: 0.18215). Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..configuration.errors import ConfigError

AUTOENCODER_CLASSES = ("AutoencoderKL", "VQModel")


class LatentDecoder(nn.Module):
    """Decodes sampled latents ``z * scale`` to images in [-1, 1]."""

    def __init__(self, autoencoder: nn.Module, scale: float) -> None:
        super().__init__()
        self.autoencoder, self.scale = autoencoder, float(scale)
        self.image_channels = int(autoencoder.config.out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The autoencoder's decoding of z / scale, float32."""
        z = (z / self.scale).to(self.autoencoder.dtype)
        return self.autoencoder.decode(z).sample.to(torch.float32)


def load_latent_decoder(folder: str | Path, scale: float,
                        key: str = "model.autoencoder") -> LatentDecoder:
    """The diffusers autoencoder in ``folder`` (its config.json names the class)."""
    import diffusers

    config = Path(folder) / "config.json"
    if not config.is_file():
        raise ConfigError(key, str(folder), "needs a local diffusers AutoencoderKL or VQModel "
                          "folder (config.json and weights)")
    name = json.loads(config.read_text()).get("_class_name")
    if name not in AUTOENCODER_CLASSES:
        raise ConfigError(key, str(folder), f"holds a {name}; give one of "
                          f"{', '.join(AUTOENCODER_CLASSES)}")
    try:
        model = getattr(diffusers, name).from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(key, str(folder), f"cannot load the {name} ({err})") from None
    return LatentDecoder(model.eval().requires_grad_(False), scale)
