"""skipsearch.apply / skipsearch.remove on a diffusers pipeline: hooks, windows, profiles."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

import numpy as np
import torch
import yaml
from diffusers import DDPMPipeline, DDPMScheduler

import skipsearch
from skipsearch.models.diffusers_unet import find_diffusers_skips
from skipsearch.tuning.pipelines import HOOKS_ATTRIBUTE
from skipsearch.tuning.schedule import SkipSchedule
from skipsearch.tuning.schedule_file import FORMAT, load_schedule
from skipsearch.tuning.skips import skip_tuning
from tests.support.diffusers_nets import (
    LINEAR,
    count_pre_hooks,
    noisy,
    tiny_unet2d,
)


@pytest.fixture
def pipe():
    pipeline = DDPMPipeline(unet=tiny_unet2d(), scheduler=DDPMScheduler(**LINEAR))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def generate(pipe) -> np.ndarray:
    """Two DDPM steps from seed 0, as a float array."""
    return pipe(batch_size=1, generator=torch.Generator().manual_seed(0), num_inference_steps=2,
                output_type="np").images


def pipeline_sigma(pipe, t: int) -> float:
    """sigma of discrete timestep t, straight from the pipeline scheduler's alphas_cumprod."""
    abar = float(pipe.scheduler.alphas_cumprod[t])
    return ((1 - abar) / abar) ** 0.5


def test_apply_identity_is_bit_exact_and_remove_restores(pipe):
    k = len(find_diffusers_skips(pipe.unet))
    plain = generate(pipe)
    skipsearch.apply(pipe, [1.0] * k)
    assert np.array_equal(generate(pipe), plain)
    skipsearch.apply(pipe, [0.5] * k)
    tuned = generate(pipe)
    assert not np.allclose(tuned, plain, atol=1e-3)
    skipsearch.remove(pipe)
    assert np.array_equal(generate(pipe), plain)


def test_apply_matches_skip_tuning_for_every_schedule_form(pipe, tmp_path):
    unet, skips = pipe.unet, find_diffusers_skips(pipe.unet)
    rhos = [0.4 + 0.05 * i for i in range(len(skips))]
    x, t = noisy((2, 3, 16, 16)), torch.tensor(400)
    with torch.no_grad(), skip_tuning(unet, skips, rhos):
        expected = unet(x, t).sample
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({
        "format": FORMAT, "model": {}, "sampler": {}, "score": {}, "study": {},
        "schedule": SkipSchedule(tuple(rhos)).to_dict()}))
    for schedule in (rhos, SkipSchedule(tuple(rhos)), load_schedule(path), path, str(path)):
        skipsearch.apply(pipe, schedule)
        with torch.no_grad():
            assert torch.equal(unet(x, t).sample, expected)
    skipsearch.remove(pipe)


def test_apply_twice_then_remove_leaves_no_hooks(pipe):
    unet = pipe.unet
    k = len(find_diffusers_skips(unet))
    first = skipsearch.apply(pipe, [0.5] * k)
    assert count_pre_hooks(unet) == k + 1  # the skips and the call-level sigma hook
    windowed = SkipSchedule((0.7,) * k, window=(0.1, 2.0))
    second = skipsearch.apply(pipe, windowed)
    assert first.handles == [] and getattr(unet, HOOKS_ATTRIBUTE) is second
    assert count_pre_hooks(unet) == k + 1  # the skips and the call-level sigma hook
    skipsearch.remove(pipe)
    assert count_pre_hooks(unet) == 0 and not hasattr(unet, HOOKS_ATTRIBUTE)
    skipsearch.remove(pipe)
    assert count_pre_hooks(unet) == 0
    with pytest.raises(ValueError, match="coefficients"):
        skipsearch.apply(pipe, [0.5])
    assert count_pre_hooks(unet) == 0


def test_apply_with_a_noise_window_leaves_calls_outside_it_untouched(pipe):
    unet = pipe.unet
    k = len(find_diffusers_skips(unet))
    inside, outside = 600, 100
    lo, hi = pipeline_sigma(pipe, 500), pipeline_sigma(pipe, 700)
    assert pipeline_sigma(pipe, outside) < lo
    x = noisy((2, 3, 16, 16))
    with torch.no_grad():
        plain = {t: unet(x, torch.tensor(t)).sample for t in (inside, outside)}
        batch_t = torch.tensor([outside, inside])
        plain_mixed = unet(x, batch_t).sample
        skipsearch.apply(pipe, [0.5] * k)
        full = unet(x, timestep=torch.tensor(inside)).sample
        full_mixed = unet(x, batch_t).sample
        skipsearch.apply(pipe, SkipSchedule((0.5,) * k, window=(lo, hi)))
        assert torch.equal(unet(x, torch.tensor(outside)).sample, plain[outside])
        assert torch.equal(unet(x, timestep=outside).sample, plain[outside])
        assert torch.equal(unet(x, torch.tensor(inside)).sample, full)
        assert not torch.allclose(full, plain[inside], atol=1e-3)
        mixed = unet(x, batch_t).sample  # one sample outside the window, one inside
        assert torch.equal(mixed[0], plain_mixed[0])
        assert torch.equal(mixed[1], full_mixed[1])
    skipsearch.remove(pipe)


def test_apply_with_a_profile_uses_the_scheduler_sigma(pipe):
    unet = pipe.unet
    k = len(find_diffusers_skips(unet))
    rising = SkipSchedule((0.4,) * k, profile="rising", profile_range=(0.01, 100.0))
    x, t = noisy((1, 3, 16, 16)), 300
    effective = rising.at_sigma(pipeline_sigma(pipe, t))
    assert 0.4 < effective[0] < 1.0
    with torch.no_grad():
        skipsearch.apply(pipe, effective)
        expected = unet(x, t).sample
        skipsearch.apply(pipe, rising)
        torch.testing.assert_close(unet(x, t).sample, expected, rtol=1e-6, atol=1e-6)
    skipsearch.remove(pipe)


def test_a_bare_unet_takes_a_schedule_as_its_pipeline_does_and_a_with_block_removes_it(pipe):
    unet = pipe.unet
    k = len(skipsearch.find_skips(unet))
    assert k == len(skipsearch.find_skips(pipe)) == len(find_diffusers_skips(unet))
    x, t = noisy((2, 3, 16, 16)), torch.tensor(600)
    with torch.no_grad():
        plain = unet(x, t).sample
    windowed = SkipSchedule((0.5,) * k, window=(pipeline_sigma(pipe, 500),
                                                pipeline_sigma(pipe, 700)))
    skipsearch.apply(pipe, windowed)
    with torch.no_grad():
        via_pipe = unet(x, t).sample
    skipsearch.remove(pipe)
    assert not torch.equal(via_pipe, plain)  # timestep 600 lies in the window
    with skipsearch.apply(unet, windowed, scheduler=pipe.scheduler) as hooks:
        assert getattr(unet, HOOKS_ATTRIBUTE) is hooks
        with torch.no_grad():
            assert torch.equal(unet(x, t).sample, via_pipe)
    assert count_pre_hooks(unet) == 0 and not hasattr(unet, HOOKS_ATTRIBUTE)
    hooks = skipsearch.apply(unet, [0.5] * k)  # no window: no scheduler needed
    hooks.remove()
    assert count_pre_hooks(unet) == 0 and not hasattr(unet, HOOKS_ATTRIBUTE)


def test_a_window_on_a_bare_unet_needs_a_scheduler(pipe):
    k = len(skipsearch.find_skips(pipe))
    with pytest.raises(TypeError, match="scheduler= with a bare UNet"):
        skipsearch.apply(pipe.unet, SkipSchedule((0.5,) * k, window=(0.1, 2.0)))
    assert count_pre_hooks(pipe.unet) == 0
    with pytest.raises(TypeError, match="neither a pipeline with a unet nor a diffusers UNet"):
        skipsearch.apply(torch.nn.Linear(2, 2), [0.5])


def test_a_schedule_found_with_guidance_hands_its_weight_to_the_pipeline_call(pipe):
    k = len(find_diffusers_skips(pipe.unet))
    with skipsearch.apply(pipe, SkipSchedule((0.9,) * k, guidance_scale=4.5)) as hooks:
        assert hooks.call_kwargs == {"guidance_scale": 4.5}
    assert skipsearch.apply(pipe, [0.9] * k).call_kwargs == {}
    skipsearch.remove(pipe)
