"""The one Denoiser shape every model adapter exposes: EDM's D(x; sigma, class_labels)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..tuning.skips import SkipPoint


class Denoiser(nn.Module):
    """Base class: ``forward(x, sigma, class_labels) -> D(x; sigma)`` plus the model's skips."""

    sigma_data: float = 0.5
    # The noise levels the network was trained on, (lowest, highest); None: it takes any.
    sigma_range: tuple[float, float] | None = None
    img_channels: int
    img_resolution: int
    label_dim: int
    skips: list[SkipPoint]

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, class_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """D(x; sigma) in float32; adapters implement it."""
        raise NotImplementedError

    def condition_for(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> Any:
        """The conditioning of the images of ``seeds``: one-hot labels ``seed % label_dim``."""
        from ..samplers.seeds import labels_from_seeds

        return labels_from_seeds(seeds, self.label_dim, device)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Sampler output to images in [-1, 1]: unchanged here, decoded by latent models."""
        return x

    def round_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """The noise levels the network supports nearest to ``sigma``: ``sigma`` itself here."""
        return sigma

    @property
    def image_channels(self) -> int:
        """Channels of the decoded images (the sampled ones unless a model decodes)."""
        return self.img_channels

    @property
    def can_guide(self) -> bool:
        """Whether classifier-free guidance applies (a ``guidance_scale`` and a null condition)."""
        return False


@contextlib.contextmanager
def guided(denoiser: Denoiser, scale: float | None) -> Iterator[None]:
    """Sample with guidance weight ``scale`` inside the block (None: the model's own)."""
    if scale is None:
        yield
        return
    if not denoiser.can_guide:
        raise ValueError(f"a guidance_scale of {scale:g} was given, but this model has no "
                         "classifier-free guidance (a text-to-image model, or a class-"
                         "conditional one with model.null_class)")
    before = denoiser.guidance_scale
    denoiser.guidance_scale = float(scale)
    try:
        yield
    finally:
        denoiser.guidance_scale = before


def trained_range(low: float | None, high: float | None) -> tuple[float, float] | None:
    """``(low, high)`` as a ``sigma_range``: None when neither end limits (0 or none, inf)."""
    low = 0.0 if low is None else float(low)
    high = math.inf if high is None else float(high)
    return None if low <= 0 and high == math.inf else (low, high)


class EDMPrecond(Denoiser):
    """EDM preconditioning (Karras et al. 2022, Table 1) around a raw network F."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data
        self.img_channels = net.img_channels
        self.img_resolution = net.img_resolution
        self.label_dim = net.label_dim
        self.skips = [
            SkipPoint(p.index, p.level, p.resolution, p.skip_channels, p.in_channels,
                      "net." + p.module_name)
            for p in net.skips
        ]

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, class_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise, class_labels)."""
        dtype = next(self.net.parameters()).dtype
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        x32 = x.to(torch.float32)
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + sigma**2).sqrt()
        c_noise = sigma.log().flatten() / 4
        F_x = self.net((c_in * x32).to(dtype), c_noise.to(dtype), class_labels)
        return c_skip * x32 + c_out * F_x.to(torch.float32)
