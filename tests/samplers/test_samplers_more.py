"""Euler, EDM stochastic and DPM-Solver++(2M) against closed forms; registry; per-image noise."""

from __future__ import annotations

import math

import pytest
import torch

from skipsearch.execution.generation import generate
from skipsearch.samplers import (
    SAMPLERS,
    PerImageNoise,
    edm_sigmas,
    latents_from_seeds,
    nfe_of,
    sample_edm_stochastic,
    sample_euler,
    sample_heun,
    sigmas_from_list,
)

MU, S = 0.3, 0.5  # data ~ N(MU, S^2) per pixel
SIGMA_MAX = 80.0
IMAGENET64 = {"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.003}


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact D(x; sigma) = E[y | y + n = x] for y ~ N(MU, S^2), n ~ N(0, sigma^2)."""
    return (S**2 * x + sigma**2 * MU) / (S**2 + sigma**2)


def exact_endpoint(x_T: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """The probability-flow ODE maps x(sigma_max) to MU + (x - MU) S / sqrt(S^2 + sigma_max^2)."""
    return MU + (x_T - MU) * S / math.sqrt(S**2 + sigma_max**2)


def generator_noise(seed: int):
    """A noise source drawing from one generator (fast for thousands of 1-pixel samples)."""
    gen = torch.Generator().manual_seed(seed)
    return lambda like: torch.randn(like.shape, generator=gen, dtype=like.dtype)


def endpoint_error(sampler: str, steps: int) -> float:
    """Max endpoint error of a deterministic sampler on the Gaussian case."""
    x_T = latents_from_seeds(range(256), (4,)).double() * SIGMA_MAX
    out = SAMPLERS[sampler].solve(gaussian_denoiser, x_T, edm_sigmas(steps))
    return (out - exact_endpoint(x_T, SIGMA_MAX)).abs().max().item()


# Measured max errors: Euler 2048 steps 2.0e-3 (first order, about 4 / N);
# Heun and DPM-Solver++(2M) 128 steps 1.3e-3. Endpoints spread over about +-1.5.
@pytest.mark.parametrize(("sampler", "steps"), [("euler", 2048), ("heun", 128),
                                                ("dpmpp_2m", 128)])
def test_reaches_the_closed_form_endpoint(sampler, steps):
    assert endpoint_error(sampler, steps) < 6e-3 * S


# Doubling the steps of the EDM discretization about halves every step. Measured 32 -> 64:
# Euler 1.99, Heun 4.29, DPM-Solver++(2M) 4.47.
@pytest.mark.parametrize(("sampler", "low", "high"), [("euler", 1.6, 2.5), ("heun", 3.0, 5.0),
                                                      ("dpmpp_2m", 3.0, 5.0)])
def test_order_of_convergence(sampler, low, high):
    ratio = endpoint_error(sampler, 32) / endpoint_error(sampler, 64)
    assert low < ratio < high


def test_dpmpp_2m_follows_the_papers_lambda_form():
    # Lu et al. 2022, Algorithm 2 with alpha = 1, lambda = -log(sigma), on an uneven grid
    # (r_2 = h_1 / h_2 = log 2 / log 10): DDIM step, one 2M step, then x = D at sigma = 0.
    sig = [10.0, 5.0, 0.5]
    lam = [-math.log(s) for s in sig]
    h1, h2 = lam[1] - lam[0], lam[2] - lam[1]
    r2 = h1 / h2

    def x0(x, i):
        return gaussian_denoiser(x, torch.tensor(sig[i], dtype=torch.float64))

    x_T = latents_from_seeds(range(8), (2,)).double() * sig[0]
    x1 = sig[1] / sig[0] * x_T - math.expm1(-h1) * x0(x_T, 0)
    D2 = (1 + 1 / (2 * r2)) * x0(x1, 1) - 1 / (2 * r2) * x0(x_T, 0)
    x2 = sig[2] / sig[1] * x1 - math.expm1(-h2) * D2
    expected = x0(x2, 2)
    out = SAMPLERS["dpmpp_2m"].solve(gaussian_denoiser, x_T, sigmas_from_list(sig))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_stochastic_without_churn_is_heun_bit_for_bit():
    x_T = latents_from_seeds(range(64), (3,)).double() * SIGMA_MAX
    sigmas = edm_sigmas(18)
    heun = sample_heun(gaussian_denoiser, x_T, sigmas)

    def no_noise(like):
        raise AssertionError("noise drawn without churn")

    assert torch.equal(sample_edm_stochastic(gaussian_denoiser, x_T, sigmas), heun)
    assert torch.equal(sample_edm_stochastic(gaussian_denoiser, x_T, sigmas, no_noise,
                                             S_churn=0.0, S_noise=1.003), heun)
    # Churn outside [S_min, S_max] is no churn either; the noise is drawn at every step (as
    # EDM draws it, so each seed's stream stays EDM's) and left unused.
    drawn = []

    def counted(like):
        drawn.append(like.shape)
        return torch.randn_like(like)

    assert torch.equal(sample_edm_stochastic(gaussian_denoiser, x_T, sigmas, counted,
                                             S_churn=40.0, S_min=100.0, S_max=200.0), heun)
    assert len(drawn) == 18


@pytest.mark.parametrize(("S_churn", "steps", "gamma"),
                         [(0.2, 1, 0.2), (3.0, 4, math.sqrt(2) - 1), (1.0, 5, 0.2)])
def test_churn_adds_sqrt_t_hat2_minus_t2_times_s_noise(S_churn, steps, gamma):
    # With D(x) = x every d is 0, so x_0 = x_T + S_noise * sum_i sqrt(t_hat_i^2 - t_i^2) * n_i.
    sigmas = edm_sigmas(steps, sigma_max=2.0)
    x_T = torch.full((2, 3), 2.0, dtype=torch.float64)
    out = sample_edm_stochastic(lambda x, sigma: x, x_T, sigmas, torch.ones_like,
                                S_churn=S_churn, S_noise=1.5)
    amplitude = sigmas[:-1].sum().item() * math.sqrt((1 + gamma) ** 2 - 1)
    torch.testing.assert_close(out, x_T + 1.5 * amplitude, rtol=1e-12, atol=0)


def test_churn_only_inside_s_min_s_max():
    # With D(x) = x and unit noise, x_0 - x_T sums S_noise sqrt(t_hat^2 - t^2) over the steps
    # inside [S_min, S_max] only; the noise itself is drawn at every step, as EDM draws it.
    sigmas = edm_sigmas(12)
    drawn = []

    def noise(like):
        drawn.append(1)
        return torch.ones_like(like)

    x_T = torch.ones(2, dtype=torch.float64) * 80.0
    out = sample_edm_stochastic(lambda x, sigma: x, x_T, sigmas, noise, **IMAGENET64)
    inside = (sigmas[:-1] >= IMAGENET64["S_min"]) & (sigmas[:-1] <= IMAGENET64["S_max"])
    gamma = min(IMAGENET64["S_churn"] / 12, math.sqrt(2) - 1)
    amplitude = sigmas[:-1][inside].sum().item() * math.sqrt((1 + gamma) ** 2 - 1)
    assert 0 < inside.sum() < 12 and len(drawn) == 12
    torch.testing.assert_close(out, x_T + IMAGENET64["S_noise"] * amplitude, rtol=1e-12, atol=0)


def stochastic_endpoints(noise_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 2 (256 steps, S_churn = 40: gamma = 0.156) and Heun from 4000 1-pixel starts."""
    x_T = latents_from_seeds(range(4000), (1,)).double() * SIGMA_MAX
    options = {**IMAGENET64, "S_noise": 1.0}
    out = sample_edm_stochastic(gaussian_denoiser, x_T, edm_sigmas(256),
                                generator_noise(noise_seed), **options)
    return out.flatten(), sample_heun(gaussian_denoiser, x_T, edm_sigmas(256)).flatten()


@pytest.mark.parametrize("noise_seed", [0, 1])
def test_stochastic_endpoint_distribution_matches_the_data(noise_seed):
    out, heun = stochastic_endpoints(noise_seed)
    # Each step maps a sample of p(x; t_i) to p(x; t_hat) exactly (added Gaussian noise), then
    # integrates the ODE; only the start N(0, 80^2) differs from p(x; 80) = N(MU, 80^2 + S^2).
    # The ODE carries that offset to N(MU (1 - k), (80 k)^2), k = S / sqrt(S^2 + 80^2); churn
    # forgets part of it, so the target lies between that and N(MU, S^2): at most 0.0019 in the
    # mean and 4e-5 in the std apart, below 0.25 standard errors here. Compare with the data.
    # Discretization widens the std (measured on 200k samples: +2.4% at 64 steps with
    # gamma = sqrt(2) - 1, +0.9% at 128, +0.16% at 256), so 256 steps keep it below 0.2 SE.
    se_mean = S / math.sqrt(len(out))
    se_std = S / math.sqrt(2 * (len(out) - 1))
    assert abs(out.mean().item() - MU) < 4 * se_mean
    assert abs(out.std().item() - S) < 4 * se_std
    # The noise was used: per-sample endpoints leave the deterministic ones.
    assert (out - heun).abs().mean().item() > 0.1 * S


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize(("sampler", "options", "expected"), [
    ("euler", {}, lambda n: n),
    ("heun", {}, lambda n: 2 * n - 1),
    ("edm_stochastic", {**IMAGENET64, "S_max": 100.0}, lambda n: 2 * n - 1),
    ("dpmpp_2m", {}, lambda n: n),
    ("unipc", {"order": 3}, lambda n: n),
])
def test_nfe_is_counted_exactly(sampler, options, expected, steps):
    calls = []

    def counting(x, sigma):
        calls.append(float(sigma))
        return gaussian_denoiser(x, sigma)

    x_T = torch.zeros(2, 3, dtype=torch.float64) + SIGMA_MAX
    SAMPLERS[sampler].solve(counting, x_T, edm_sigmas(steps), generator_noise(0), **options)
    assert len(calls) == SAMPLERS[sampler].nfe(steps) == nfe_of(sampler, steps) == expected(steps)
    assert 0.0 not in calls  # never evaluated at sigma = 0


def test_registry_lists_the_samplers_and_their_options():
    assert set(SAMPLERS) == {"euler", "heun", "edm_stochastic", "dpmpp_2m", "unipc"}
    assert SAMPLERS["edm_stochastic"].options == ("S_churn", "S_min", "S_max", "S_noise")
    assert SAMPLERS["unipc"].options == ("order",)
    assert all(SAMPLERS[name].options == () for name in ("euler", "heun", "dpmpp_2m"))


def test_unknown_options_are_refused(tiny_denoiser):
    with pytest.raises(ValueError, match="S_churn"):
        generate(tiny_denoiser, range(2), edm_sigmas(2), "heun", options={"S_churn": 1.0})
    with pytest.raises(ValueError, match="S_chrun"):
        generate(tiny_denoiser, range(2), edm_sigmas(2), "edm_stochastic",
                 options={"S_chrun": 1.0})
    with pytest.raises(TypeError, match="S_churn"):
        sample_euler(gaussian_denoiser, torch.ones(1, dtype=torch.float64), edm_sigmas(2),
                     S_churn=1.0)
    with pytest.raises(ValueError, match="noise"):
        sample_edm_stochastic(gaussian_denoiser, torch.ones(1, dtype=torch.float64),
                              edm_sigmas(2), S_churn=1.0)


def test_sigmas_from_list_appends_zero_and_returns_float64():
    sigmas = sigmas_from_list([80, 10.0, 1])
    assert sigmas.dtype == torch.float64
    assert sigmas.tolist() == [80.0, 10.0, 1.0, 0.0]
    assert sigmas_from_list([5.0, 0.5, 0.0]).tolist() == [5.0, 0.5, 0.0]
    assert torch.equal(sigmas_from_list(edm_sigmas(7).tolist()), edm_sigmas(7))


@pytest.mark.parametrize(("values", "named"), [
    ([80.0, -1.0, 0.5], r"\[-1.0\]"),
    ([80.0, 0.0, 0.5], r"\[0.0\]"),
    ([80.0, float("nan")], r"\[nan\]"),
    ([80.0, 10.0, 10.0, 1.0], "10 then 10"),
    ([1.0, 2.0, 0.0], "1 then 2"),
    ([], "at least one"),
    ([0.0], "at least one"),
])
def test_sigmas_from_list_refuses_bad_levels(values, named):
    with pytest.raises(ValueError, match=named):
        sigmas_from_list(values)


def test_per_image_noise_depends_on_the_seed_only():
    like = torch.zeros(4, 1, 3, 3, dtype=torch.float64)
    alone, batch = PerImageNoise([7]), PerImageNoise([3, 7, 9, 11])
    alone.latents((1, 3, 3))
    latents = batch.latents((1, 3, 3))
    first, second = batch(like), batch(like)
    assert first.shape == like.shape and first.dtype == torch.float64
    assert torch.equal(alone(like[:1]), first[1:2]) and torch.equal(alone(like[:1]), second[1:2])
    # The noise continues each seed's stream after its latents: no repeats.
    assert not torch.allclose(first.float(), latents, atol=0.1)
    assert not torch.allclose(first, second, atol=0.1)
    with pytest.raises(ValueError, match="4 seeds"):
        batch(like[:2])


def test_stochastic_images_do_not_depend_on_the_batch(tiny_denoiser):
    sigmas = edm_sigmas(4, sigma_max=10.0)
    options = {**IMAGENET64, "S_churn": 4.0}

    def images(seeds, sampler="edm_stochastic"):
        return generate(tiny_denoiser, seeds, sigmas, sampler, options=options
                        if sampler == "edm_stochastic" else None)

    together = images(range(6))
    apart = torch.cat([images(range(0, 2)), images([2]), images(range(3, 6))])
    reversed_ = images(range(5, -1, -1)).flip(0)
    # Float32 convolutions may round differently per batch shape, far below 1 / 127.5.
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-4)
    torch.testing.assert_close(together, reversed_, rtol=0, atol=1e-4)
    # The churn noise reached the images.
    assert (together - images(range(6), "heun")).abs().max().item() > 1e-2
