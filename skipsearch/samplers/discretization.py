"""Noise-level discretizations, all ending with sigma = 0."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads on first use: the config check reads positive_levels alone
    import torch


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
               rho: float = 7.0) -> torch.Tensor:
    """EDM's t_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, then t_N = 0.

    Karras et al. 2022, Eq. 5; returns N + 1 float64 values.
    """
    import torch

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    i = torch.arange(steps, dtype=torch.float64)
    denom = max(steps - 1, 1)
    t = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho)))
    return torch.cat([t**rho, torch.zeros(1, dtype=torch.float64)])


def sigmas_from_list(values: Sequence[float]) -> torch.Tensor:
    """User-given noise levels, high to low, checked and ended with 0; float64."""
    import torch

    return torch.tensor([*positive_levels(values), 0.0], dtype=torch.float64)


def positive_levels(values: Sequence[float]) -> list[float]:
    """The positive levels of a user-given list (a final 0 dropped); ValueError if unusable."""
    levels = [float(v) for v in values]
    if levels and levels[-1] == 0.0:
        levels = levels[:-1]
    if not levels:
        raise ValueError(f"need at least one positive noise level, got {list(values)}")
    bad = [v for v in levels if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"noise levels must be positive and finite (a final 0 is allowed), "
                         f"got {bad} in {levels}")
    pairs = [(a, b) for a, b in itertools.pairwise(levels) if not a > b]
    if pairs:
        shown = ", ".join(f"{a:g} then {b:g}" for a, b in pairs)
        raise ValueError(f"noise levels must strictly decrease, got {shown} in {levels}")
    return levels
