"""A second digits feature network: an autoencoder, whose bottleneck is the feature.

It differs from the digits classifier (``features.py``) in architecture (strided convolutions
into a linear bottleneck, no pooling) and in objective (reconstruction, no labels), so a
schedule can be confirmed on two independent rulers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..paths import ASSETS_DIR
from ..precision import autocast
from ..weights import AUTOENCODER_FILE, check_network_file, file_sha256, load_checked

DIGITS_AUTOENCODER = ASSETS_DIR / "digits_autoencoder.safetensors"
AUTOENCODER_KEY = "metric.autoencoder_weights"


@dataclass(frozen=True)
class DigitsAutoencoderConfig:
    """Architecture of the digits autoencoder."""

    img_resolution: int = 16
    img_channels: int = 1
    width: int = 16
    feature_dim: int = 32


class DigitsAutoencoder(nn.Module):
    """A small convolutional autoencoder; ``encode`` gives the bottleneck, the feature."""

    def __init__(self, config: DigitsAutoencoderConfig) -> None:
        super().__init__()
        if config.img_resolution % 4:
            raise ValueError(f"img_resolution {config.img_resolution} is not a multiple of 4")
        self.config = config
        w, c, side = config.width, config.img_channels, config.img_resolution // 4
        flat = 2 * w * side * side
        self.encoder = nn.Sequential(
            nn.Conv2d(c, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(flat, config.feature_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.feature_dim, flat), nn.SiLU(), nn.Unflatten(1, (2 * w, side, side)),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * w, w, 3, padding=1), nn.SiLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(w, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, c, 3, padding=1), nn.Tanh(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck features of images in [-1, 1], shape (B, feature_dim)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x``, in [-1, 1]."""
        return self.decoder(self.encode(x))


class AutoencoderFeatures(nn.Module):
    """Adapter for torchmetrics: float images in [-1, 1] (or uint8) to float64 features."""

    precision = "fp32"  # autocast dtype of the network (precision.features)

    def __init__(self, autoencoder: DigitsAutoencoder, name: str, sha256: str) -> None:
        super().__init__()
        self.autoencoder = autoencoder.eval().requires_grad_(False)
        self.num_features = autoencoder.config.feature_dim
        self.img_channels = autoencoder.config.img_channels
        self.name = name
        self.sha256 = sha256

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features in float64, so torchmetrics keeps the FID in float64."""
        if images.dtype == torch.uint8:
            images = images.float() / 127.5 - 1.0
        if images.shape[-1] != self.autoencoder.config.img_resolution:
            size = (self.autoencoder.config.img_resolution,) * 2
            images = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True)
        with autocast(images.device, self.precision):
            return self.autoencoder.encode(images.float()).double()


def load_digits_autoencoder(path: Path = DIGITS_AUTOENCODER,
                            key: str = AUTOENCODER_KEY) -> DigitsAutoencoder:
    """The autoencoder stored at ``path``; a file that does not fit is a ConfigError."""
    raw, header = check_network_file(path, key, AUTOENCODER_FILE)
    config = DigitsAutoencoderConfig(**raw)
    return load_checked(lambda: DigitsAutoencoder(config), path, key, header).eval()


def digits_autoencoder_features(path: Path = DIGITS_AUTOENCODER,
                                key: str = AUTOENCODER_KEY) -> AutoencoderFeatures:
    """The bundled autoencoder as a feature network, named by the hash of its weights file."""
    model = load_digits_autoencoder(path, key)
    return AutoencoderFeatures(model, "digits-autoencoder", file_sha256(path))


def autoencoder_config_dict(config: DigitsAutoencoderConfig) -> dict:
    """A JSON-friendly dict of the autoencoder config."""
    return asdict(config)
