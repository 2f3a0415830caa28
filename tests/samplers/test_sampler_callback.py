"""The per-step callback of every sampler: once per step, the right levels, no effect."""

from __future__ import annotations

import itertools

import pytest
import torch

from skipsearch.samplers import SAMPLERS, edm_sigmas, latents_from_seeds
from skipsearch.samplers.names import SAMPLER_NAMES
from skipsearch.samplers.seeds import PerImageNoise

MU, S = 0.3, 0.5
OPTIONS = {"edm_stochastic": {"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.003},
           "unipc": {"order": 3}}


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact D(x; sigma) for data ~ N(MU, S^2) per pixel."""
    return (S**2 * x + sigma**2 * MU) / (S**2 + sigma**2)


def run(name: str, steps: int, callback=None) -> torch.Tensor:
    """``name`` on the Gaussian denoiser from fixed seeds, its noise drawn per image."""
    sigmas = edm_sigmas(steps, 0.002, 80.0, 7.0)
    seeds = [3, 4]
    x_T = latents_from_seeds(seeds, (1, 4, 4)).to(torch.float64) * float(sigmas[0])
    return SAMPLERS[name].solve(gaussian_denoiser, x_T, sigmas, PerImageNoise(seeds, "cpu"),
                                callback=callback, **OPTIONS.get(name, {}))


@pytest.mark.parametrize("name", SAMPLER_NAMES)
@pytest.mark.parametrize("steps", [1, 6])
def test_callback_once_per_step_and_results_unchanged(name, steps):
    sigmas = edm_sigmas(steps, 0.002, 80.0, 7.0)
    seen = []
    with_callback = run(name, steps, lambda step: seen.append(step))
    without = run(name, steps)
    assert torch.equal(with_callback, without)  # bit-identical
    assert [s.i for s in seen] == list(range(steps))
    for s in seen:
        assert float(s.t_cur) == float(sigmas[s.i]) and float(s.t_next) == float(sigmas[s.i + 1])
        assert s.x_cur.shape == s.x_next.shape == s.denoised.shape == without.shape
    assert torch.equal(seen[-1].x_next, without)  # the last step ends in the result
    if name != "edm_stochastic":  # churn evaluates at t_hat; the others at (x_cur, t_cur)
        for s in seen:
            if name != "unipc" or s.i == 0:  # UniPC evaluates before it corrects x_cur
                assert torch.equal(s.denoised, gaussian_denoiser(s.x_cur, s.t_cur))
    if name != "unipc":  # UniPC's next step corrects the state its previous one predicted
        for before, after in itertools.pairwise(seen):
            assert torch.equal(before.x_next, after.x_cur)


def test_euler_step_is_the_closed_form():
    """Each Euler step seen by the callback is x + (t_next - t) (x - D) / t, by hand."""
    seen = []
    run("euler", 4, seen.append)
    for s in seen:
        expected = s.x_cur + (s.t_next - s.t_cur) * (s.x_cur - s.denoised) / s.t_cur
        assert torch.allclose(s.x_next, expected, rtol=0, atol=1e-12)
