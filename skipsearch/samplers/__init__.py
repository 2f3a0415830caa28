"""Samplers in EDM's sigma form, their discretizations and NFE accounting."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.denoiser import Denoiser
from .discretization import edm_sigmas
from .heun import heun_nfe, sample_heun
from .seeds import labels_from_seeds, latents_from_seeds

SAMPLERS = {"heun": (sample_heun, heun_nfe)}


def nfe_of(sampler: str, steps: int) -> int:
    """Exact network evaluations of ``sampler`` with ``steps`` steps."""
    return SAMPLERS[sampler][1](steps)


def generate(denoiser: Denoiser, seeds: Sequence[int], sigmas: torch.Tensor,
             sampler: str = "heun", device: torch.device | str = "cpu") -> torch.Tensor:
    """Images in [-1, 1] for ``seeds`` (class labels from the seeds), float32 on ``device``."""
    shape = (denoiser.img_channels, denoiser.img_resolution, denoiser.img_resolution)
    latents = latents_from_seeds(seeds, shape, device)
    labels = labels_from_seeds(seeds, denoiser.label_dim, device)
    sigmas = sigmas.to(device)

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return denoiser(x.to(torch.float32), sigma.expand(x.shape[0]), labels).to(torch.float64)

    solve = SAMPLERS[sampler][0]
    x = solve(denoise, latents.to(torch.float64) * sigmas[0], sigmas)
    return x.to(torch.float32).clamp(-1.0, 1.0)


__all__ = ["SAMPLERS", "edm_sigmas", "generate", "heun_nfe", "labels_from_seeds",
           "latents_from_seeds", "nfe_of", "sample_heun"]
