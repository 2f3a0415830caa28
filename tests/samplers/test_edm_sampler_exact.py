"""Sampling equals EDM's own sampler loop, bit for bit on the CPU (float32 net, float64 loop)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from skipsearch.execution.generation import generate, network_denoise
from skipsearch.models.edm import load_edm_denoiser
from skipsearch.samplers import (
    PerImageNoise,
    edm_sigmas,
    sample_edm_stochastic,
    sample_heun,
)
from tests.support.edm_format.writer import write_snapshot

SEEDS = [0, 1, 2]
TINY = {"img_resolution": 16, "img_channels": 3, "model_channels": 32,
        "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [8]}


def edm_sampler_loop(net, latents, class_labels, randn_like, num_steps, sigma_min=0.002,
                     sigma_max=80.0, rho=7.0, S_churn=0.0, S_min=0.0, S_max=math.inf,
                     S_noise=1.0):
    """Algorithm 2 (Algorithm 1 at S_churn = 0) in the form of EDM's generate.py sampler.

    One 0-dim float64 noise level per network call, the network's output cast to float64,
    noise drawn at every step; returns x_0 in float64 before any clamping.
    """
    i = torch.arange(num_steps, dtype=torch.float64)
    t_steps = (sigma_max ** (1 / rho)
               + i / (num_steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    t_steps = torch.cat([net.round_sigma(t_steps), torch.zeros_like(t_steps[:1])])
    x_next = latents.to(torch.float64) * t_steps[0]
    for n, (t_cur, t_next) in enumerate(itertools.pairwise(t_steps)):
        x_cur = x_next
        # Increase noise temporarily.
        gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= t_cur <= S_max else 0
        t_hat = net.round_sigma(t_cur + gamma * t_cur)
        x_hat = x_cur + (t_hat ** 2 - t_cur ** 2).sqrt() * S_noise * randn_like(x_cur)
        # Euler step.
        denoised = net(x_hat, t_hat, class_labels).to(torch.float64)
        d_cur = (x_hat - denoised) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        # Apply 2nd order correction.
        if n < num_steps - 1:
            denoised = net(x_next, t_next, class_labels).to(torch.float64)
            d_prime = (x_next - denoised) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def per_seed_streams(seeds, shape):
    """Latents and a randn_like drawing on, seed by seed (EDM's StackedRandomGenerator)."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    latents = torch.stack([torch.randn(shape, generator=g) for g in gens])

    def randn_like(x):
        return torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for g in gens])

    return latents, randn_like


@pytest.fixture(scope="module", params=[("EDMPrecond", 0), ("EDMPrecond", 10),
                                        ("iDDPMPrecond", 0)], ids=["uncond", "cond", "iddpm"])
def model(request, tmp_path_factory):
    precond, label_dim = request.param
    path = tmp_path_factory.mktemp("exact") / "network-snapshot.pkl"
    write_snapshot(path, precond, label_dim=label_dim, model_type="DhariwalUNet", **TINY)
    return load_edm_denoiser(path, trust=True)


CHURN = {"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.007}


@pytest.mark.parametrize("options", [{}, CHURN], ids=["heun", "stochastic"])
def test_the_samplers_equal_edms_loop_bit_for_bit(model, options):
    steps, shape = 5, (3, 16, 16)
    # EDM's generate.py clamps the discretization to the network's range of noise levels.
    sigma_min, sigma_max = max(0.002, model.net.sigma_min), min(80.0, model.net.sigma_max)
    labels = model.condition_for(SEEDS)
    latents, randn_like = per_seed_streams(SEEDS, shape)
    expected = edm_sampler_loop(model.net, latents, labels, randn_like, steps, sigma_min,
                                sigma_max, **options)

    sigmas = edm_sigmas(steps, sigma_min, sigma_max)
    noise = PerImageNoise(SEEDS)
    rounded = torch.cat([model.round_sigma(sigmas[:-1]), sigmas[-1:]])
    x_T = noise.latents(shape).to(torch.float64) * float(rounded[0])
    denoise = network_denoise(model, labels)
    if options:
        x_0 = sample_edm_stochastic(denoise, x_T, rounded, noise, **options,
                                    round_sigma=model.round_sigma)
    else:
        x_0 = sample_heun(denoise, x_T, rounded)
    assert x_0.dtype == torch.float64
    assert torch.equal(x_0, expected), (x_0 - expected).abs().max()

    images = generate(model, SEEDS, sigmas, "edm_stochastic" if options else "heun",
                      options=options or None)
    assert torch.equal(images, expected.to(torch.float32).clamp(-1, 1))


def test_per_image_levels_are_kept_where_images_differ(model):
    """A tensor of B different levels reaches the network as B levels."""
    seen = []
    denoise = network_denoise(lambda x, s, c: (seen.append(s), x)[1], None)
    x = torch.zeros(3, 3, 16, 16, dtype=torch.float64)
    denoise(x, torch.tensor(2.0, dtype=torch.float64))
    denoise(x, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert seen[0].shape == () and seen[1].tolist() == [1.0, 2.0, 3.0]


def test_iddpm_levels_below_its_range_stay_positive(model):
    """0.002 is below iDDPM's smallest level; rounding it to the grid's 0 would give NaN."""
    sigmas = edm_sigmas(3)
    rounded = model.round_sigma(sigmas)
    assert (rounded[:-1] > 0).all() and rounded[-1] == 0
    assert torch.isfinite(generate(model, SEEDS, sigmas, "heun")).all()
