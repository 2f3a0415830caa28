"""Train the digits classifier whose penultimate layer is the FID feature."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..data.digits import digits_tensors, train_test_split_indices
from ..metrics.features import DigitsClassifier, DigitsClassifierConfig

log = logging.getLogger(__name__)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels, padding with the background (-1)."""
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    size = x.shape[-1]
    out = torch.empty_like(x)
    offsets = torch.randint(0, 2 * max_shift + 1, (x.shape[0], 2), generator=generator)
    for k, (dy, dx) in enumerate(offsets.tolist()):
        out[k] = padded[k, :, dy:dy + size, dx:dx + size]
    return out


@torch.no_grad()
def accuracy(model: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` classified as ``y``."""
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def train_classifier(cfg, seed: int) -> tuple[DigitsClassifier, float, list[str]]:
    """Train on a seeded split; return the model, its held-out accuracy and the log lines."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = digits_tensors()
    train_idx, test_idx = train_test_split_indices(len(labels), cfg.test_fraction, seed)
    model = DigitsClassifier(DigitsClassifierConfig())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    lines = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for batch in perm.split(cfg.batch_size):
            x = random_shift(images[batch], cfg.max_shift, gen)
            loss = F.cross_entropy(model(x), labels[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        acc = accuracy(model, images[test_idx], labels[test_idx])
        line = f"epoch {epoch:3d}  loss {loss.item():.4f}  held-out accuracy {acc:.4f}"
        log.info(line)
        lines.append(line)
    return model.eval(), accuracy(model, images[test_idx], labels[test_idx]), lines
