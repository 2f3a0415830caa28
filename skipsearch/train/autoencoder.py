"""Train the digits autoencoder, whose bottleneck is the second FID feature."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..data.digits import RESOLUTION, digits_tensors, train_test_split_indices
from ..metrics.digits_autoencoder import DigitsAutoencoder, DigitsAutoencoderConfig

log = logging.getLogger(__name__)


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
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    lines = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for batch in perm.split(cfg.batch_size):
            x = images[batch]
            loss = F.mse_loss(model(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        mse = reconstruction_mse(model, images[test_idx])
        line = f"epoch {epoch:3d}  loss {loss.item():.4f}  held-out mse {mse:.4f}"
        log.info(line)
        lines.append(line)
    return model.eval(), reconstruction_mse(model, images[test_idx]), lines
