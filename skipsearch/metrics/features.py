"""FID feature networks: the bundled digits classifier, whose penultimate layer is the feature."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration.paths import ASSETS_DIR
from ..configuration.weights import CLASSIFIER_FILE, check_network_file, file_sha256, load_checked
from ..execution.precision import autocast

DIGITS_CLASSIFIER = ASSETS_DIR / "digits_classifier.safetensors"


@dataclass(frozen=True)
class DigitsClassifierConfig:
    """Architecture of the digits classifier."""

    img_resolution: int = 16
    img_channels: int = 1
    width: int = 32
    feature_dim: int = 64
    num_classes: int = 10


class DigitsClassifier(nn.Module):
    """A small CNN; ``features`` is its penultimate layer, ``forward`` gives class logits."""

    def __init__(self, config: DigitsClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.convs = nn.Sequential(
            nn.Conv2d(config.img_channels, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
        )
        flat = 2 * w * (config.img_resolution // 4) ** 2
        self.penultimate = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(flat, 128),
                                         nn.SiLU(), nn.Linear(128, config.feature_dim), nn.SiLU())
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations for images in [-1, 1], shape (B, feature_dim)."""
        return self.penultimate(self.convs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.features(x))


class FeatureExtractor(nn.Module):
    """A bundled digits network as a feature network: images in [-1, 1] (or uint8) to float64.

    ``network`` has a ``config`` (``img_resolution``, ``img_channels``, ``feature_dim``) and
    the method named ``method`` giving its features: the classifier's ``features``, the
    autoencoder's ``encode``.
    """

    precision = "fp32"  # autocast dtype of the network (precision.features)

    def __init__(self, network: nn.Module, name: str, sha256: str,
                 method: str = "features") -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.method = method
        self.num_features = network.config.feature_dim
        self.img_channels = network.config.img_channels
        self.name = name
        self.sha256 = sha256

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features in float64, so the statistics stay in float64."""
        if images.dtype == torch.uint8:
            images = images.float() / 127.5 - 1.0
        resolution = self.network.config.img_resolution
        if images.shape[-1] != resolution:
            images = F.interpolate(images.float(), size=(resolution, resolution),
                                   mode="bilinear", antialias=True)
        with autocast(images.device, self.precision):
            return getattr(self.network, self.method)(images.float()).double()


def load_digits_classifier(path: Path = DIGITS_CLASSIFIER,
                           key: str = "metric.weights") -> DigitsClassifier:
    """The classifier stored at ``path``; a file that does not fit is a ConfigError."""
    raw, header = check_network_file(path, key, CLASSIFIER_FILE)
    config = DigitsClassifierConfig(**raw)
    return load_checked(lambda: DigitsClassifier(config), path, key, header).eval()


def digits_feature_extractor(path: Path = DIGITS_CLASSIFIER,
                             key: str = "metric.weights") -> FeatureExtractor:
    """The bundled digits feature network, named by the hash of its weights file."""
    model = load_digits_classifier(path, key)
    return FeatureExtractor(model, "digits-classifier", file_sha256(path))


def config_dict(config: DigitsClassifierConfig) -> dict:
    """A JSON-friendly dict of the classifier config."""
    return asdict(config)
