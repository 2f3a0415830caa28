"""Noise-level discretizations, all ending with sigma = 0."""

from __future__ import annotations

import torch


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
               rho: float = 7.0) -> torch.Tensor:
    """EDM's t_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, then t_N = 0.

    Karras et al. 2022, Eq. 5; returns N + 1 float64 values.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    i = torch.arange(steps, dtype=torch.float64)
    denom = max(steps - 1, 1)
    t = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho)))
    return torch.cat([t**rho, torch.zeros(1, dtype=torch.float64)])
