"""Denoising loss with and without a schedule, in pixel space and in a feature space.

Ma et al. (2024) find that Skip-Tuning raises the denoising (score-matching) loss in pixel space
while it lowers the loss in the space of a feature network, most at intermediate noise levels.
For reference images x, noise levels sigma and one standard-normal n per image (common to both
networks and to every sigma):

    pixel loss    lambda(sigma) * mean over pixels of (D(x + sigma n; sigma) - x)^2,
                  lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (EDM's weight)
    feature loss  || f(D(x + sigma n; sigma)) - f(x) ||^2 (the FID feature network f; the
                  denoised image clamped to [-1, 1] as a saved image would be)

both averaged over images. Batches are streamed: memory holds one batch at a time.

    skipsearch analyze skip.params.rho_top=0.8 skip.params.rho_bottom=0.8
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..execution.progress import Progress
from ..models import LoadedModel
from ..samplers import PerImageNoise
from ..tuning.schedule import SkipSchedule
from ..tuning.skips import skip_tuning
from .table import write_csv

CSV_COLUMNS = ("sigma", "weight", "pixel_untuned", "pixel_tuned", "pixel_ratio",
               "feature_untuned", "feature_tuned", "feature_ratio", "n_images")


def edm_weight(sigma: float, sigma_data: float) -> float:
    """EDM's loss weight lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sigma_grid(sigma_min: float, sigma_max: float, count: int) -> list[float]:
    """``count`` noise levels spaced evenly in log sigma from sigma_min to sigma_max."""
    if count == 1:
        return [float(sigma_min)]
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    return [math.exp(lo + i * (hi - lo) / (count - 1)) for i in range(count)]


@dataclass(frozen=True)
class LossRow:
    """Both losses of the untuned and the tuned network at one noise level."""

    sigma: float
    weight: float
    pixel_untuned: float
    pixel_tuned: float
    feature_untuned: float
    feature_tuned: float
    n_images: int

    @property
    def pixel_ratio(self) -> float:
        """Tuned over untuned pixel loss (> 1: the schedule raises it)."""
        return self.pixel_tuned / self.pixel_untuned

    @property
    def feature_ratio(self) -> float:
        """Tuned over untuned feature loss (< 1: the schedule lowers it)."""
        return self.feature_tuned / self.feature_untuned


def _tuned(model: LoadedModel, schedule: SkipSchedule) -> contextlib.AbstractContextManager:
    """The schedule on the denoiser: the registered hooks if any, else temporary ones."""
    if model.hooks is not None:
        return model.hooks.tuning(schedule)
    return skip_tuning(model.denoiser, model.denoiser.skips, schedule)


def denoising_losses(model: LoadedModel, schedule: SkipSchedule, images: torch.Tensor,
                     labels: torch.Tensor | None, sigmas: Sequence[float],
                     features: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                     device: torch.device | str, seed_start: int = 0) -> list[LossRow]:
    """Pixel and feature losses per sigma, untuned and tuned, on common noise.

    ``images`` in [-1, 1] (N, C, H, W) stay where they are; one batch at a time goes to
    ``device``. Image k's noise comes from seed ``seed_start + k``; ``labels`` are one-hot.
    """
    denoiser = model.denoiser
    identity = SkipSchedule.identity(len(denoiser.skips))
    sums = torch.zeros(len(sigmas), 4, dtype=torch.float64)  # pixel, tuned; feature, tuned
    progress = Progress(len(images), f"analyze ({len(sigmas)} noise levels)")
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device, torch.float32)
            seeds = range(seed_start + start, seed_start + start + len(x))
            n = PerImageNoise(seeds, device).latents(tuple(x.shape[1:]))
            cond = None if labels is None else labels[start:start + len(x)].to(device)
            f_x = features(x).double()
            for i, sigma in enumerate(sigmas):
                level = torch.full((len(x),), float(sigma), dtype=torch.float64, device=device)
                for j, s in enumerate((identity, schedule)):
                    with _tuned(model, s), model.precision.network_autocast(x.device):
                        d = denoiser(x + float(sigma) * n, level, cond).to(torch.float32)
                    pixel = (d.double() - x.double()).square().flatten(1).mean(1)
                    weight = edm_weight(float(sigma), float(denoiser.sigma_data))
                    feat = (features(d.clamp(-1.0, 1.0)).double() - f_x).square().sum(1)
                    sums[i, j] += weight * pixel.sum().cpu()
                    sums[i, 2 + j] += feat.sum().cpu()
            progress.update(len(x))
    progress.close()
    count = len(images)
    return [LossRow(float(sigma), edm_weight(float(sigma), float(denoiser.sigma_data)),
                    *(float(v) / count for v in sums[i].tolist()), count)
            for i, sigma in enumerate(sigmas)]


def write_loss_csv(rows: Sequence[LossRow], path: Path) -> Path:
    """One line per noise level with the columns of ``CSV_COLUMNS``."""
    return write_csv(path, CSV_COLUMNS,
                     ([repr(float(getattr(r, c))) for c in CSV_COLUMNS[:-1]] + [r.n_images]
                      for r in rows))


def read_loss_csv(path: Path) -> list[LossRow]:
    """Rows written by ``write_loss_csv``."""
    with path.open(newline="") as f:
        return [LossRow(float(r["sigma"]), float(r["weight"]), float(r["pixel_untuned"]),
                        float(r["pixel_tuned"]), float(r["feature_untuned"]),
                        float(r["feature_tuned"]), int(r["n_images"]))
                for r in csv.DictReader(f)]
