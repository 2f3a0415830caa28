"""Skip-Tuning hooks: scale the skip channels of a UNet's decoder inputs by rho_i.

A decoder block whose input is ``concat([h, d_i])`` gets a forward pre-hook that multiplies the
trailing ``d_i`` channels by ``rho_i`` (Ma et al. 2024, Sec. 3). Skips are listed bottom to top:
index 0 is the skip next to the bottleneck. Usage::

    with skip_tuning(denoiser, denoiser.skips, coefficients):
        images = sampler(denoiser, latents, sigmas, class_labels)

Under ``torch.no_grad()`` the scaling happens in place on the freshly concatenated block input;
with autograd recording it is out of place, so gradients see it.
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


def _make_hook(point: SkipPoint, rho: float):
    """A forward pre-hook scaling the trailing ``point.skip_channels`` of the input by ``rho``."""
    split = point.in_channels - point.skip_channels

    def hook(module: nn.Module, args: tuple):
        x = args[0]
        if x.shape[1] != point.in_channels:
            raise RuntimeError(f"{point.module_name} got {x.shape[1]} input channels, "
                               f"expected {point.in_channels} (decoder + skip)")
        if torch.is_grad_enabled() and x.requires_grad:
            # Out of place, so autograd records the scaling.
            return (torch.cat([x[:, :split], x[:, split:] * rho], dim=1), *args[1:])
        # Sampling: the input is the freshly concatenated [h, skip]; scaling its skip channels
        # in place saves a full read and write of the block input.
        x[:, split:].mul_(rho)
        return None

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
            handles.append(block.register_forward_pre_hook(_make_hook(point, float(rho))))
        yield model
    finally:
        for handle in handles:
            handle.remove()
