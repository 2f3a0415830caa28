"""Train the digits classifier whose penultimate layer is the FID feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.digits import digits_tensors, train_test_split_indices
from ..metrics.features import DigitsClassifier, DigitsClassifierConfig
from .epochs import train_epochs


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

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        x = random_shift(images[batch], cfg.max_shift, gen)
        return F.cross_entropy(model(x), labels[batch])

    lines = train_epochs(model, cfg, train_idx, gen, loss_of,
                         lambda: accuracy(model, images[test_idx], labels[test_idx]),
                         "accuracy")
    return model.eval(), accuracy(model, images[test_idx], labels[test_idx]), lines
