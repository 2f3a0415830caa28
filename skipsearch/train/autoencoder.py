"""Train the digits autoencoder, whose bottleneck is the second FID feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.digits import RESOLUTION, digits_tensors, train_test_split_indices
from ..metrics.digits_autoencoder import DigitsAutoencoder, DigitsAutoencoderConfig
from .epochs import train_epochs


@torch.no_grad()
def reconstruction_mse(model: DigitsAutoencoder, x: torch.Tensor) -> float:
    """Mean squared error of the model's reconstructions of ``x``."""
    model.eval()
    return F.mse_loss(model(x), x).item()


def train_autoencoder(cfg, seed: int) -> tuple[DigitsAutoencoder, float, list[str]]:
    """Train on a seeded split; return the model, its held-out MSE and the log lines."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = digits_tensors()
    train_idx, test_idx = train_test_split_indices(len(labels), cfg.test_fraction, seed)
    config = DigitsAutoencoderConfig(img_resolution=RESOLUTION, width=cfg.width,
                                     feature_dim=cfg.feature_dim)
    model = DigitsAutoencoder(config)
    lines = train_epochs(model, cfg, train_idx, gen,
                         lambda batch: F.mse_loss(model(images[batch]), images[batch]),
                         lambda: reconstruction_mse(model, images[test_idx]), "mse")
    return model.eval(), reconstruction_mse(model, images[test_idx]), lines
