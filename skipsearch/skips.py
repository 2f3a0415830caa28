"""Skip-Tuning hooks: scale the skip channels of a UNet's decoder inputs by rho_i.

A decoder block whose input is ``concat([h, d_i])`` gets a forward pre-hook that multiplies the
trailing ``d_i`` channels by ``rho_i`` (Ma et al. 2024, Sec. 3). Skips are listed bottom to top:
index 0 is the skip next to the bottleneck. Usage::

    with skip_tuning(denoiser, coefficients):
        images = sampler(denoiser, latents, sigmas, class_labels)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SkipPoint:
    """One encoder-to-decoder skip: the decoder module whose input carries it, bottom to top."""

    index: int
    level: int
    resolution: int
    skip_channels: int
    in_channels: int
    module_name: str


def _skip_scale(point: SkipPoint, rho: float) -> torch.Tensor:
    """Per-channel factors (1, C, 1, 1): ones for the decoder features, rho for the skip."""
    scale = torch.ones(1, point.in_channels, 1, 1)
    scale[:, point.in_channels - point.skip_channels:] = rho
    return scale


def _make_hook(scale: torch.Tensor):
    """A forward pre-hook multiplying the first positional input by ``scale``."""

    def hook(module: nn.Module, args: tuple):
        x = args[0]
        return (x * scale.to(device=x.device, dtype=x.dtype), *args[1:])

    return hook


@contextlib.contextmanager
def skip_tuning(
    model: nn.Module, skips: Sequence[SkipPoint], coefficients: Sequence[float]
) -> Iterator[nn.Module]:
    """Scale skip ``skips[i]`` by ``coefficients[i]`` inside the block; hooks always removed."""
    if len(coefficients) != len(skips):
        raise ValueError(
            f"got {len(coefficients)} coefficients for a model with {len(skips)} skips"
        )
    modules = dict(model.named_modules())
    handles = []
    try:
        for point, rho in zip(skips, coefficients, strict=True):
            block = modules[point.module_name]
            device = next(block.parameters()).device
            scale = _skip_scale(point, float(rho)).to(device)
            handles.append(block.register_forward_pre_hook(_make_hook(scale)))
        yield model
    finally:
        for handle in handles:
            handle.remove()
