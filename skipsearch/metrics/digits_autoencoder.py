"""A second digits feature network: an autoencoder, whose bottleneck is the feature.

It differs from the digits classifier (``features.py``) in architecture (strided convolutions
into a linear bottleneck, no pooling) and in objective (reconstruction, no labels), so a
schedule can be confirmed on two independent rulers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..configuration.paths import ASSETS_DIR
from ..configuration.weights import AUTOENCODER_FILE, check_network_file, file_sha256, load_checked
from .features import FeatureExtractor

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


def load_digits_autoencoder(path: Path = DIGITS_AUTOENCODER,
                            key: str = AUTOENCODER_KEY) -> DigitsAutoencoder:
    """The autoencoder stored at ``path``; a file that does not fit is a ConfigError."""
    raw, header = check_network_file(path, key, AUTOENCODER_FILE)
    config = DigitsAutoencoderConfig(**raw)
    return load_checked(lambda: DigitsAutoencoder(config), path, key, header).eval()


def digits_autoencoder_features(path: Path = DIGITS_AUTOENCODER,
                                key: str = AUTOENCODER_KEY) -> FeatureExtractor:
    """The bundled autoencoder as a feature network, named by the hash of its weights file."""
    model = load_digits_autoencoder(path, key)
    return FeatureExtractor(model, "digits-autoencoder", file_sha256(path), method="encode")


def autoencoder_config_dict(config: DigitsAutoencoderConfig) -> dict:
    """A JSON-friendly dict of the autoencoder config."""
    return asdict(config)
