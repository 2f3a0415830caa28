"""EDM's stochastic sampler: churn then a Heun step (Karras et al. 2022, Algorithm 2)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .base import Denoise, Noise, Step, StepCallback
from .heun import heun_step


def edm_stochastic_nfe(steps: int) -> int:
    """Network evaluations of Algorithm 2 with N steps: 2N - 1, as for Algorithm 1."""
    return 2 * steps - 1


def churn_gamma(t_cur: float, steps: int, S_churn: float, S_min: float, S_max: float) -> float:
    """gamma_i = min(S_churn / N, sqrt(2) - 1) if S_min <= t_i <= S_max, else 0."""
    if S_min <= t_cur <= S_max:
        return min(S_churn / steps, math.sqrt(2) - 1)
    return 0.0


@torch.no_grad()
def sample_edm_stochastic(denoise: Denoise, x_T: torch.Tensor, sigmas: torch.Tensor,
                          noise: Noise | None = None, *, S_churn: float = 0.0,
                          S_min: float = 0.0, S_max: float = math.inf,
                          S_noise: float = 1.0,
                          round_sigma: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          callback: StepCallback | None = None) -> torch.Tensor:
    """Stochastic sampling with churn and Heun steps (Karras et al. 2022, Algorithm 2).

    ``round_sigma`` maps a raised level t_hat to one the network supports (iDDPM's grid), as
    EDM's sampler does; the identity when None.
    """
    if S_churn < 0:
        raise ValueError(f"S_churn must be >= 0, got {S_churn}")
    if S_churn > 0 and noise is None:
        raise ValueError("sample_edm_stochastic needs a noise source when S_churn > 0")
    steps = len(sigmas) - 1
    x_next = x_T  # the caller picks the dtype (float64 or float32)
    for i in range(steps):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        x_cur = x_next
        # Increase noise temporarily: t_hat = t_i + gamma t_i.
        gamma = churn_gamma(float(t_cur), steps, S_churn, S_min, S_max)
        # EDM draws eps ~ N(0, I) at every step, also where gamma = 0 (outside [S_min,
        # S_max]); drawing it here too keeps each seed's noise stream step for step EDM's.
        eps = noise(x_cur) if S_churn > 0 else None
        t_hat, x_hat = t_cur, x_cur
        if gamma > 0:
            t_hat = t_cur + gamma * t_cur
            if round_sigma is not None:
                t_hat = round_sigma(torch.as_tensor(t_hat, dtype=torch.float64))
            x_hat = x_cur + (t_hat**2 - t_cur**2).sqrt() * S_noise * eps
        # Euler step from t_hat, then the 2nd order correction unless t_next = 0.
        x_next, denoised = heun_step(denoise, x_hat, t_hat, t_next)
        if callback is not None:
            callback(Step(i, t_cur, t_next, x_cur, x_next, denoised))
    return x_next
