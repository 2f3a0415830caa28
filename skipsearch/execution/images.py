"""Image grids: float images in [-1, 1] to uint8 arrays and PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] to uint8 where they are, rounding as EDM's generate.py saves them."""
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] to uint8 (N, H, W, C) on the host (``quantize``)."""
    return quantize(images.cpu()).permute(0, 2, 3, 1).numpy()


def grid_array(images: torch.Tensor, nrow: int | None = None, scale: int = 1,
               pad: int = 1) -> np.ndarray:
    """A uint8 grid of the images with ``pad`` dark pixels between them, upscaled ``scale``x."""
    pixels = to_uint8(images)
    n, h, w, c = pixels.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 32, dtype=np.uint8)
    for k in range(n):
        r, col = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top:top + h, left:left + w] = pixels[k]
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None, scale: int = 4) -> Path:
    """Write a PNG grid of the images; returns the path."""
    grid = grid_array(images, nrow, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    return path
