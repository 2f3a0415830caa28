"""EDM's deterministic sampler: Heun's 2nd-order method (Karras et al. 2022, Algorithm 1)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def heun_nfe(steps: int) -> int:
    """Network evaluations of Algorithm 1 with N steps: 2N - 1 (the last step is Euler)."""
    return 2 * steps - 1


@torch.no_grad()
def sample_heun(denoise: Denoise, x_T: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Integrate dx/dsigma = (x - D(x; sigma)) / sigma from sigmas[0] to sigmas[-1] = 0.

    ``denoise(x, sigma)`` is D in float64 in and out; ``x_T`` is the starting point
    (latents times sigmas[0]). Integration runs in float64.
    """
    x_next = x_T.to(torch.float64)
    for t_cur, t_next in itertools.pairwise(sigmas):
        x_cur = x_next
        # Euler step.
        d_cur = (x_cur - denoise(x_cur, t_cur)) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
        # Apply 2nd order correction.
        if t_next > 0:
            d_prime = (x_next - denoise(x_next, t_next)) / t_next
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next
