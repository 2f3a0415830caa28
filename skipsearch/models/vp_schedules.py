"""VP noise schedules of published checkpoints, expressed in EDM's sigma.

A VP model sees ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``; in EDM form ``x = x_t / sqrt(abar)``
has noise level ``sigma = sqrt((1 - abar) / abar)``. Each schedule maps sigma to the timestep
the network was trained with: a discrete schedule by interpolating log sigma between its
timesteps (as k-diffusion does), the continuous VP SDE in closed form.
"""

from __future__ import annotations

import math

import torch

from ..configuration.errors import ConfigError
from .diffusers_unet import sigma_to_timestep, vp_sigmas

BETA_SCHEDULES = ("linear", "cosine", "sqrt_linear")


def adm_linear_betas(steps: int) -> torch.Tensor:
    """guided-diffusion's ``linear``: beta from 1e-4 to 0.02, scaled by 1000 / steps."""
    scale = 1000 / steps
    return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)


def adm_cosine_betas(steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol and Dhariwal's cosine schedule: abar(t) = cos((t + 0.008) / 1.008 pi/2)^2."""

    def abar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - abar((i + 1) / steps) / abar(i / steps), max_beta) for i in range(steps)]
    return torch.tensor(betas, dtype=torch.float64)


def sqrt_linear_betas(start: float, end: float, steps: int) -> torch.Tensor:
    """Linear in sqrt(beta) from ``start`` to ``end`` (LDM's and Stable Diffusion's ``linear``)."""
    return torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2


def betas_for(name: str, steps: int, start: float | None = None, end: float | None = None,
              key: str = "model.noise_schedule") -> torch.Tensor:
    """The betas of a named schedule: ``linear``/``cosine`` (ADM) or ``sqrt_linear`` (LDM)."""
    if name == "linear":
        return adm_linear_betas(steps)
    if name == "cosine":
        return adm_cosine_betas(steps)
    if name == "sqrt_linear":
        return sqrt_linear_betas(float(start), float(end), steps)
    raise ConfigError(key, name, f"choose one of {', '.join(BETA_SCHEDULES)}")


class DiscreteVP:
    """Discrete timesteps n = offset ... offset + T - 1 with abar_n = prod(1 - beta)."""

    def __init__(self, betas: torch.Tensor | None = None, offset: int = 0,
                 alphas_cumprod: torch.Tensor | None = None) -> None:
        if alphas_cumprod is None:
            alphas_cumprod = torch.cumprod(1.0 - betas.to(torch.float64), dim=0)
        sigmas = vp_sigmas(alphas_cumprod.to(torch.float64))
        self.log_sigmas = sigmas.log()
        self.offset = offset  # U-ViT numbers its timesteps from 1
        self.sigma_min, self.sigma_max = float(sigmas[0]), float(sigmas[-1])
        # Trained on its own levels only: below the first or above the last, t would clamp.
        self.sigma_range = (self.sigma_min, self.sigma_max)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The network timestep (float64) of noise level ``sigma``, fractional between levels.

        Computed in float64 from ``sigma`` as given: pass float64 levels, since a level rounded
        to float32 first no longer lands on its own integer timestep.
        """
        log_sigmas = self.log_sigmas.to(torch.as_tensor(sigma).device)
        return sigma_to_timestep(sigma, log_sigmas) + self.offset


class ContinuousVP:
    """Song et al.'s VP SDE: sigma(t)^2 = exp(beta_0 t + (beta_1 - beta_0) t^2 / 2) - 1.

    The network sees ``time_scale * t`` (U-ViT's pixel models: 999 t, t in [t_min, 1]).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0,
                 time_scale: float = 999.0, t_min: float = 1e-4) -> None:
        self.beta_0, self.beta_d, self.time_scale = beta_min, beta_max - beta_min, time_scale
        self.sigma_min, self.sigma_max = self.sigma(t_min), self.sigma(1.0)
        # U-ViT trains on t uniform in [0, 1] (its SDE.sample with t_init = 0): no lower end.
        self.sigma_range = (0.0, self.sigma_max)

    def sigma(self, t: float) -> float:
        """sigma(t) = sqrt(exp(beta_0 t + beta_d t^2 / 2) - 1)."""
        return math.sqrt(math.expm1(self.beta_0 * t + 0.5 * self.beta_d * t * t))

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """time_scale * t(sigma), t the positive root of beta_d/2 t^2 + beta_0 t = log(1+s^2)."""
        log1p = torch.log1p(torch.as_tensor(sigma).to(torch.float64) ** 2)
        t = (torch.sqrt(self.beta_0**2 + 2 * self.beta_d * log1p) - self.beta_0) / self.beta_d
        return self.time_scale * t
