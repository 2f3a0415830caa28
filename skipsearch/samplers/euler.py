"""First-order Euler sampler on EDM's probability-flow ODE."""

from __future__ import annotations

import itertools

import torch

from .base import Denoise, Noise, Step, StepCallback, reject_options


def euler_nfe(steps: int) -> int:
    """Network evaluations of Euler with N steps: N."""
    return steps


@torch.no_grad()
def sample_euler(denoise: Denoise, x_T: torch.Tensor, sigmas: torch.Tensor,
                 noise: Noise | None = None, *, callback: StepCallback | None = None,
                 **options: float) -> torch.Tensor:
    """Euler's method on dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, Eq. 4)."""
    reject_options("euler", options)
    x_next = x_T  # the caller picks the dtype (float64 or float32)
    for i, (t_cur, t_next) in enumerate(itertools.pairwise(sigmas)):
        x_cur = x_next
        # Euler step.
        denoised = denoise(x_cur, t_cur)
        d_cur = (x_cur - denoised) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
        if callback is not None:
            callback(Step(i, t_cur, t_next, x_cur, x_next, denoised))
    return x_next
