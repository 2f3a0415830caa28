"""Tiny random-initialised diffusers UNets of published layouts, and inputs for them."""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

# The DDPM CIFAR-10 layout (google/ddpm-cifar10-32) at reduced width and depth.
TINY_UNET2D = {
    "sample_size": 16, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "block_out_channels": (32, 32, 64), "norm_num_groups": 8, "attention_head_dim": 8,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
}
LINEAR = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
          "beta_schedule": "linear"}


def tiny(model_class, config: dict, **extra):
    """A random-initialised model of ``config``, in eval mode without gradients."""
    torch.manual_seed(0)
    return model_class(**config, **extra).eval().requires_grad_(False)


def tiny_unet2d() -> UNet2DModel:
    """A tiny UNet2DModel of the DDPM CIFAR-10 layout."""
    return tiny(UNet2DModel, TINY_UNET2D)


def noisy(shape, seed=1, scale=1.0):
    """A reproducible standard normal tensor times ``scale``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


def count_pre_hooks(model) -> int:
    """Forward pre-hooks registered anywhere in ``model``."""
    return sum(len(m._forward_pre_hooks) for m in model.modules())
