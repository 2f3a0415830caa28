"""The timestep a network receives for each noise level, through the sampler's call path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skipsearch.execution.generation import network_denoise


class UNetReachedError(Exception):
    """Raised by the spy once it has the UNet's inputs: the UNet itself need not run."""


def timesteps_seen(denoiser, unet: nn.Module, levels: list[float],
                   labels=None) -> list[torch.Tensor]:
    """The timestep tensor ``unet`` is called with for each level (a 0-dim float64 sigma)."""
    seen = []

    def spy(module, args):
        seen.append(args[1])
        raise UNetReachedError

    channels, size = denoiser.img_channels, denoiser.img_resolution
    x = torch.zeros(1, channels, size, size, dtype=torch.float64)
    denoise = network_denoise(denoiser, labels)  # a 0-dim float64 level per call, as sampled
    handle = unet.register_forward_pre_hook(spy)
    try:
        for sigma in levels:
            with pytest.raises(UNetReachedError):
                denoise(x, sigma)
    finally:
        handle.remove()
    return seen
