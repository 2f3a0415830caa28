"""EDM discretization and Heun sampler against closed forms; NFE; per-image seeds."""

from __future__ import annotations

import math

import pytest
import torch

from skipsearch.execution.generation import generate
from skipsearch.samplers import edm_sigmas, heun_nfe, latents_from_seeds, sample_heun

MU, S = 0.3, 0.5  # data ~ N(MU, S^2) per pixel


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact D(x; sigma) = E[y | y + n = x] for y ~ N(MU, S^2), n ~ N(0, sigma^2)."""
    return (S**2 * x + sigma**2 * MU) / (S**2 + sigma**2)


def exact_endpoint(x_T: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """The probability-flow ODE maps x(sigma_max) to MU + (x - MU) S / sqrt(S^2 + sigma_max^2)."""
    return MU + (x_T - MU) * S / math.sqrt(S**2 + sigma_max**2)


def test_edm_sigmas_follow_eq5():
    sigmas = edm_sigmas(5, 0.002, 80.0, 7.0)
    assert sigmas.dtype == torch.float64 and len(sigmas) == 6
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[4].item() == pytest.approx(0.002)
    assert sigmas[5].item() == 0.0
    i = 2
    expected = (80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert sigmas[i].item() == pytest.approx(expected, rel=1e-12)
    assert torch.all(sigmas[1:] < sigmas[:-1])


def heun_error(steps: int) -> float:
    """Max endpoint error of Heun on the Gaussian case."""
    x_T = latents_from_seeds(range(256), (4,)).double() * 80.0
    out = sample_heun(gaussian_denoiser, x_T, edm_sigmas(steps))
    return (out - exact_endpoint(x_T, 80.0)).abs().max().item()


def test_heun_reaches_the_closed_form_endpoint():
    # Endpoints spread over about +-1.5; 128 steps land within 0.6% of the data std.
    assert heun_error(128) < 6e-3 * S


def test_heun_is_second_order():
    ratio = heun_error(32) / heun_error(64)
    assert 3.0 < ratio < 5.0


def test_heun_endpoint_distribution_matches_the_data():
    x_T = latents_from_seeds(range(4000), (1,)).double() * 80.0
    out = sample_heun(gaussian_denoiser, x_T, edm_sigmas(64)).flatten()
    # From N(0, 80^2) starts the ODE lands on N(MU * (1 - S / sqrt(S^2 + 80^2)), S^2 * 80^2 / ...).
    scale = S / math.sqrt(S**2 + 80.0**2)
    expected_mean = MU * (1 - scale)
    expected_std = 80.0 * scale
    se = expected_std / math.sqrt(len(out))
    assert abs(out.mean().item() - expected_mean) < 4 * se
    assert out.std().item() == pytest.approx(expected_std, rel=0.05)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_nfe_is_counted_exactly(steps):
    calls = []

    def counting(x, sigma):
        calls.append(1)
        return gaussian_denoiser(x, sigma)

    sample_heun(counting, torch.zeros(2, 3, dtype=torch.float64) + 80.0, edm_sigmas(steps))
    assert len(calls) == heun_nfe(steps) == 2 * steps - 1


def test_images_do_not_depend_on_the_batch(tiny_denoiser):
    sigmas = edm_sigmas(3)
    together = generate(tiny_denoiser, range(6), sigmas)
    apart = torch.cat([generate(tiny_denoiser, range(0, 2), sigmas),
                       generate(tiny_denoiser, range(2, 6), sigmas)])
    assert torch.equal(latents_from_seeds(range(6), (1, 16, 16))[2:],
                       latents_from_seeds(range(2, 6), (1, 16, 16)))
    # Same latents and labels; float32 convolutions may round differently per batch shape,
    # far below one 8-bit level (1 / 127.5).
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-4)
