"""UniPC-bh2: closed-form order of convergence, diffusers' scheduler, NFE, config checks."""

from __future__ import annotations

import math
import re

import pytest
import torch
import yaml

from skipsearch.samplers import SAMPLERS, edm_sigmas, latents_from_seeds, nfe_of, sample_unipc
from skipsearch.samplers.unipc import step_order
from tests.conftest import run_cli

MU, S = 0.3, 0.5  # data ~ N(MU, S^2) per pixel
SIGMA_MAX, SIGMA_MIN = 80.0, 0.002


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact D(x; sigma) = E[y | y + n = x] for y ~ N(MU, S^2), n ~ N(0, sigma^2)."""
    return (S**2 * x + sigma**2 * MU) / (S**2 + sigma**2)


def exact_last_denoised(x_T: torch.Tensor) -> torch.Tensor:
    """D(x(sigma_min); sigma_min) with x(sigma) the exact probability-flow ODE solution.

    x(sigma) = MU + (x_T - MU) sqrt(S^2 + sigma^2) / sqrt(S^2 + SIGMA_MAX^2); the last step to
    sigma = 0 is x = D(x; sigma_min), so this is what a sampler without error would return.
    """
    scale = S**2 / (math.sqrt(S**2 + SIGMA_MIN**2) * math.sqrt(S**2 + SIGMA_MAX**2))
    return MU + (x_T - MU) * scale


def unipc_error(order: int, steps: int) -> float:
    """Max endpoint error of UniPC on the Gaussian case."""
    x_T = latents_from_seeds(range(256), (4,)).double() * SIGMA_MAX
    out = sample_unipc(gaussian_denoiser, x_T, edm_sigmas(steps, SIGMA_MIN, SIGMA_MAX),
                       order=order)
    return (out - exact_last_denoised(x_T)).abs().max().item()


# UniP-p with UniC-p has order p + 1 (Zhao et al. 2023, Theorem 3.3). Measured error ratios
# 32 -> 64 steps: order 2: 8.62, order 3: 16.75 (errors 1.3e-3 and 2.6e-4 at 64 steps).
@pytest.mark.parametrize(("order", "low", "high"), [(2, 6.5, 10.0), (3, 13.0, 20.0)])
def test_observed_order_is_p_plus_one(order, low, high):
    ratio = unipc_error(order, 32) / unipc_error(order, 64)
    assert low < ratio < high


@pytest.mark.parametrize("order", [2, 3])
def test_reaches_the_closed_form_endpoint(order):
    assert unipc_error(order, 64) < 3e-3 * S


def diffusers_unipc(x_T: torch.Tensor, sigmas: torch.Tensor, order: int) -> torch.Tensor:
    """The same solve with diffusers' UniPCMultistepScheduler on the same sigmas.

    diffusers integrates the VP form x_vp = x / sqrt(1 + sigma^2) and reads only its
    ``sigmas`` (EDM sigmas) in the update; it takes custom sigmas only for flow models, so
    they are set after ``set_timesteps``, in float64 (its own are float32).
    """
    from diffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler(
        solver_order=order, prediction_type="sample", predict_x0=True, solver_type="bh2",
        lower_order_final=True, final_sigmas_type="zero")
    scheduler.set_timesteps(len(sigmas) - 1)
    scheduler.sigmas = sigmas.clone()
    x = x_T / math.sqrt(1 + float(sigmas[0]) ** 2)
    for i, t in enumerate(scheduler.timesteps):
        sigma = sigmas[i]
        m = gaussian_denoiser(x * math.sqrt(1 + float(sigma) ** 2), sigma)
        x = scheduler.step(m, t, x).prev_sample
    return x


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 10])
def test_matches_diffusers_unipc_scheduler(order, steps):
    x_T = latents_from_seeds(range(32), (3,)).double() * SIGMA_MAX
    sigmas = edm_sigmas(steps)
    ours = sample_unipc(gaussian_denoiser, x_T, sigmas, order=order)
    theirs = diffusers_unipc(x_T, sigmas, order)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-13)


def test_order_warms_up_and_goes_down_at_the_end():
    assert [step_order(3, i, 6) for i in range(6)] == [1, 2, 3, 3, 2, 1]
    assert [step_order(2, i, 2) for i in range(2)] == [1, 1]


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_nfe_is_counted_exactly(order, steps):
    calls = []

    def counting(x, sigma):
        calls.append(float(sigma))
        return gaussian_denoiser(x, sigma)

    sigmas = edm_sigmas(steps)
    sample_unipc(counting, torch.zeros(2, 3, dtype=torch.float64) + 80.0, sigmas, order=order)
    assert len(calls) == nfe_of("unipc", steps) == SAMPLERS["unipc"].nfe(steps) == steps
    assert calls == sigmas[:-1].tolist()


def test_bad_order_and_options_are_refused():
    x_T = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="order"):
        sample_unipc(gaussian_denoiser, x_T, edm_sigmas(3), order=4)
    with pytest.raises(TypeError, match="S_churn"):
        sample_unipc(gaussian_denoiser, x_T, edm_sigmas(3), S_churn=1.0)


def test_sweep_export_sample_round_trip(tiny_overrides, tmp_path):
    sweep = run_cli("sweep", *tiny_overrides, "sampler=unipc", "sampler.order=3",
                    "search.steps=[4]", "search.n_trials=2")
    assert sweep.returncode == 0, sweep.stderr
    best = tmp_path / "out" / "exports" / "digits-unipc-linear" / "best.yaml"
    record = yaml.safe_load(best.read_text())
    assert record["sampler"]["options"] == {"order": 3.0} and record["sampler"]["nfe"] == 4
    sample = run_cli("sample", *tiny_overrides, f"schedule={best}")
    assert sample.returncode == 0, sample.stderr
    fid, exported = map(float, re.search(r"FID (\S+) \(exported: (\S+)\)", sample.stdout).groups())
    assert fid == pytest.approx(exported, rel=1e-4)


def test_an_order_other_than_2_or_3_is_one_line(tiny_overrides):
    result = run_cli("sweep", *tiny_overrides, "sampler=unipc", "sampler.order=1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "sampler.order" in result.stderr
