"""The precision policy: bf16/fp16 networks, a float32 sampler, feature precision, layout.

Stated tolerances, on images in [-1, 1] from the bundled digits model at 11 NFE: a network
under bf16 or fp16 autocast stays within eps(dtype) of the fp32 images on average and within
16 eps at any pixel (measured: 0.3 eps and 5.5 eps for bf16, 0.3 eps and 3.7 eps for fp16);
integrating in float32 instead of float64 moves no pixel by more than 2e-5 (measured 3.4e-6).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import skipsearch.execution.evaluate as evaluate_module
import skipsearch.samplers as samplers_module
from skipsearch.cli import compose_config
from skipsearch.configuration.build import build
from skipsearch.execution.acceleration import accelerate
from skipsearch.execution.evaluate import evaluate
from skipsearch.execution.generation import generate
from skipsearch.execution.precision import FP32, Precision, channels_last_wanted
from skipsearch.execution.runtime import build_extractor, build_model, build_scorer
from skipsearch.models import load_model
from skipsearch.samplers import edm_sigmas
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.tuning.schedule import SkipSchedule

SEEDS = range(32)


@pytest.fixture(scope="module")
def digits():
    """The bundled digits model, eager, fp32."""
    return load_model(OmegaConf.create({"kind": "digits", "name": "digits", "weights": None}))


@pytest.fixture(scope="module")
def fp32_images(digits):
    """Heun at 11 NFE, fp32 network, float64 sampler."""
    return generate(digits.denoiser, SEEDS, edm_sigmas(6), "heun", precision=FP32)


@pytest.mark.parametrize("network", ["bf16", "fp16"])
def test_low_precision_networks_stay_within_the_stated_tolerance(network, digits, fp32_images):
    images = generate(digits.denoiser, SEEDS, edm_sigmas(6), "heun",
                      precision=Precision(network))
    eps = torch.finfo(getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[network])).eps
    diff = (images - fp32_images).abs()
    assert diff.max() > 0  # autocast really ran the network in the lower precision
    assert diff.mean() <= eps and diff.max() <= 16 * eps, (diff.mean(), diff.max())


def test_a_float32_sampler_stays_within_the_stated_tolerance(digits, fp32_images):
    images = generate(digits.denoiser, SEEDS, edm_sigmas(6), "heun",
                      precision=Precision(sampler="float32"))
    diff = (images - fp32_images).abs()
    assert diff.max() > 0 and diff.max() <= 2e-5, diff.max()


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "edm_stochastic"])
def test_every_sampler_integrates_in_the_chosen_dtype(sampler, digits, monkeypatch):
    solver, seen = samplers_module.SAMPLERS[sampler], []

    def spying(denoise, x_T, sigmas, noise=None, **options):
        def spied(x, sigma):
            out = denoise(x, sigma)
            seen.append((x.dtype, out.dtype))
            return out

        return solver.solve(spied, x_T, sigmas, noise, **options)

    monkeypatch.setitem(samplers_module.SAMPLERS, sampler, replace(solver, solve=spying))
    options = {"S_churn": 5.0} if sampler == "edm_stochastic" else {}
    for dtype in ("float32", "float64"):
        seen.clear()
        generate(digits.denoiser, range(4), edm_sigmas(3), sampler, options=options,
                 precision=Precision("bf16", dtype))
        assert seen and set(seen) == {(getattr(torch, dtype),) * 2}


def test_channels_last_gives_the_same_images(digits, fp32_images):
    model = load_model(OmegaConf.create({"kind": "digits", "name": "digits", "weights": None}))
    fast = accelerate(model, Precision(channels_last=True))
    conv = next(m for m in fast.denoiser.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = generate(fast.denoiser, SEEDS, edm_sigmas(6), "heun", precision=fast.precision)
    torch.testing.assert_close(images, fp32_images, rtol=0, atol=1e-5)


def test_channels_last_auto_means_cuda_with_half_precision():
    assert channels_last_wanted("auto", "cuda", "bf16")
    assert channels_last_wanted("auto", "cuda:1", "fp16")
    assert not channels_last_wanted("auto", "cuda", "fp32")
    assert not channels_last_wanted("auto", "cpu", "bf16")
    assert channels_last_wanted("true", "cpu", "fp32")
    assert not channels_last_wanted("false", "cuda", "bf16")


def test_the_config_sets_the_policy_and_bf16_fid_is_close(tiny_overrides):
    # The bundled model and classifier: FIDs of 64 images, fp32 against bf16 everywhere.
    overrides = [o for o in tiny_overrides if not o.startswith(("model.", "metric.weights"))]
    fids = {}
    for name in ("fp32", "bf16"):
        settings = build(compose_config([*overrides, f"precision.network={name}",
                                         f"precision.features={name}"]), "sample")
        model = build_model(settings, "cpu")
        assert model.precision == Precision(name, "float64", False)
        scorer = build_scorer(settings, "cpu", model)
        assert scorer.metrics["digits_fid"].network.name == (
            "digits-classifier" if name == "fp32" else "digits-classifier-bf16")
        result = evaluate(model, SkipSchedule.identity(len(model.denoiser.skips)),
                          SamplerSpec("heun", 6), range(64), 32, "cpu", scorer)
        fids[name] = result.score
    # same seeds, so the difference is the precision's alone; measured 0.3%
    assert fids["bf16"] == pytest.approx(fids["fp32"], rel=0.03), fids
    out = Path(next(o for o in overrides if o.startswith("out_dir=")).split("=", 1)[1])
    cache = sorted(p.name for p in (out / "cache" / "reference").iterdir())
    assert len(cache) == 2 and any("bf16" in name for name in cache)  # cached apart


def test_feature_precision_runs_the_extractor_under_autocast(tiny_overrides):
    cfg = compose_config([*tiny_overrides, "precision.features=bf16"])
    extractor = build_extractor(build(cfg, "sample"), "cpu")
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    low = extractor(images)
    extractor.precision = "fp32"
    full = extractor(images)
    assert low.dtype == torch.float64 and not torch.equal(low, full)
    torch.testing.assert_close(low, full, rtol=0.05, atol=0.05)


def test_the_remembered_batch_is_per_precision(tiny_overrides, monkeypatch):
    monkeypatch.setattr(evaluate_module, "FITTING_BATCH", {})
    sampler = SamplerSpec("euler", 2)
    sizes, hashes = {}, set()
    for name in ("fp32", "bf16"):
        model = build_model(build(compose_config([*tiny_overrides,
                                                  f"precision.network={name}"]), "sample"),
                            "cpu")
        hashes.add(model.sha256)
        schedule = SkipSchedule.identity(len(model.denoiser.skips))
        real, seen = model.denoiser.forward, sizes.setdefault(name, [])

        def limited(x, sigma, *args, real=real, seen=seen, **kwargs):
            seen.append(x.shape[0])
            if x.shape[0] > 4:  # a device that holds 4 images, whatever the precision
                raise torch.OutOfMemoryError("simulated: CUDA out of memory")
            return real(x, sigma, *args, **kwargs)

        monkeypatch.setattr(model.denoiser, "forward", limited)
        evaluate(model, schedule, sampler, range(8), 8, "cpu")
        evaluate(model, schedule, sampler, range(8), 8, "cpu")
    (sha256,) = hashes
    key = (sha256, "cpu")
    assert evaluate_module.FITTING_BATCH == {(*key, "fp32"): 4, (*key, "bf16"): 4}
    # bf16 did not start from fp32's size: each found its own once (8 failed, then 4 fitted),
    # then used it directly
    for seen in sizes.values():
        assert seen[0] == 8 and seen.count(8) == 1 and set(seen[1:]) == {4}
