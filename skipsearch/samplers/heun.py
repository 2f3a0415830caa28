"""EDM's deterministic sampler: Heun's 2nd-order method (Karras et al. 2022, Algorithm 1)."""

from __future__ import annotations

import itertools

import torch

from .base import Denoise, Noise, Step, StepCallback, reject_options


def heun_nfe(steps: int) -> int:
    """Network evaluations of Algorithm 1 with N steps: 2N - 1 (the last step is Euler)."""
    return 2 * steps - 1


def heun_step(denoise: Denoise, x_cur: torch.Tensor, t_cur: torch.Tensor,
              t_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Algorithm 1 from t_cur to t_next (Euler only when t_next = 0).

    Returns x_next and the step's first network output D(x_cur; t_cur).
    """
    # Euler step.
    denoised = denoise(x_cur, t_cur)
    d_cur = (x_cur - denoised) / t_cur
    x_next = x_cur + (t_next - t_cur) * d_cur
    # Apply 2nd order correction.
    if t_next > 0:
        d_prime = (x_next - denoise(x_next, t_next)) / t_next
        x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next, denoised


@torch.no_grad()
def sample_heun(denoise: Denoise, x_T: torch.Tensor, sigmas: torch.Tensor,
                noise: Noise | None = None, *, callback: StepCallback | None = None,
                **options: float) -> torch.Tensor:
    """Heun's method on dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, Alg. 1)."""
    reject_options("heun", options)
    x_next = x_T  # the caller picks the dtype (float64 or float32)
    for i, (t_cur, t_next) in enumerate(itertools.pairwise(sigmas)):
        x_cur = x_next
        x_next, denoised = heun_step(denoise, x_cur, t_cur, t_next)
        if callback is not None:
            callback(Step(i, t_cur, t_next, x_cur, x_next, denoised))
    return x_next
