"""Stable Diffusion pipelines: prompts by seed, guidance, VAE decoding, hooks, the CLI."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch

from skipsearch.execution.generation import generate
from skipsearch.models.text_to_image import load_text_to_image
from skipsearch.samplers import edm_sigmas
from skipsearch.tuning.skips import skip_tuning
from tests.conftest import run_cli
from tests.support.sd_pipeline import write_tiny_sd_pipeline

SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear"}
PROMPTS = ["a red cat", "two dogs", "a boat at sea"]


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    return write_tiny_sd_pipeline(tmp_path_factory.mktemp("sd") / "pipeline")


def test_images_follow_the_prompt_of_their_seed(pipeline_folder):
    denoiser = load_text_to_image(pipeline_folder, SCHEDULER, "epsilon", PROMPTS)
    sigmas = edm_sigmas(2, sigma_min=0.03, sigma_max=14.6)
    together = generate(denoiser, range(4), sigmas)
    assert together.shape == (4, 3, 16, 16)
    assert together.abs().max() <= 1.0
    alone = generate(denoiser, [3], sigmas)
    torch.testing.assert_close(together[3:], alone, rtol=0, atol=1e-4)
    cond = denoiser.condition_for([0, 3], "cpu")
    assert torch.equal(cond[0], cond[1])  # seed 3 uses prompt 3 % 3 = 0
    assert not torch.equal(cond[0], denoiser.condition_for([1], "cpu")[0])


def test_guidance_combines_the_two_passes(pipeline_folder):
    guided = load_text_to_image(pipeline_folder, SCHEDULER, "epsilon", PROMPTS, 3.0)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = torch.full((2,), 2.0)
    cond = guided.condition_for([0, 1], "cpu")
    empty = guided.embed("").expand_as(cond)
    d_prompt, d_empty = guided.inner(x, sigma, cond), guided.inner(x, sigma, empty)
    torch.testing.assert_close(guided(x, sigma, cond), d_empty + 3.0 * (d_prompt - d_empty),
                               rtol=1e-4, atol=1e-5)
    k = len(guided.skips)
    plain = guided(x, sigma, cond)
    with skip_tuning(guided, guided.skips, [1.0] * k):
        assert torch.equal(guided(x, sigma, cond), plain)
    with skip_tuning(guided, guided.skips, [0.5] * k):
        assert not torch.allclose(guided(x, sigma, cond), plain, atol=1e-4)


def test_cli_samples_inspects_and_refuses_to_sweep(pipeline_folder, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n\n")
    model = ["model=stable_diffusion", f"model.path={pipeline_folder}",
             f"model.prompts={prompts}", f"out_dir={tmp_path / 'out'}", "device=cpu"]
    shown = run_cli("inspect", *model)
    assert shown.returncode == 0, shown.stderr
    assert "inner.unet.up_blocks.1.resnets.1" in shown.stdout and "4 skips" in shown.stdout
    sample = run_cli("sample", *model, "sample.score=false", "sample.n=4", "sampler.steps=2",
                     "sampler.sigma_min=0.03", "sampler.sigma_max=14.6", "model.guidance_scale=2")
    assert sample.returncode == 0, sample.stderr
    npz = np.load(tmp_path / "out" / "samples" / "config" / "samples.npz")
    assert npz["images"].shape == (4, 16, 16, 3)
    for args, key in ((["sweep"], "metric.name"), (["sample"], "sample.score")):
        refused = run_cli(*args, *model)
        assert refused.returncode == 2 and key in refused.stderr, refused.stderr
