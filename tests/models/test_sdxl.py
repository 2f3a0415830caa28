"""SDXL base pipelines: the UNet call of diffusers' own pipeline, skips, guidance, the CLI."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
from omegaconf import OmegaConf
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from skipsearch.configuration.errors import ConfigError
from skipsearch.execution.generation import generate
from skipsearch.models.diffusers_unet import (
    DiffusersConditionDenoiser,
    alphas_cumprod_from_config,
    find_diffusers_skips,
)
from skipsearch.models.kinds import MODEL_KINDS, TEXT_TO_IMAGE_KINDS
from skipsearch.models.loading import LOADERS
from skipsearch.models.sdxl import (
    SDXLDenoiser,
    force_zeros_for_empty_prompt,
    load_sdxl,
    sdxl_settings,
)
from skipsearch.samplers import edm_sigmas
from skipsearch.tuning.skips import skip_tuning
from tests.conftest import run_cli
from tests.support.diffusers_nets import count_pre_hooks, noisy
from tests.support.sd_pipeline import tiny_tokenizer_files, write_tiny_sd_pipeline
from tests.support.sdxl_pipeline import (
    IMAGE_SIZE,
    PROJECTION,
    SDXL_SCHEDULER,
    TINY_SDXL_VAE,
    write_tiny_sdxl_pipeline,
)

CONFIG = Path(__file__).resolve().parents[2] / "conf" / "model" / "sdxl.yaml"
PROMPTS = ["a red cat", "two dogs", "a boat at sea"]
SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The same random pipeline twice: force_zeros_for_empty_prompt true, then false."""
    root = tmp_path_factory.mktemp("sdxl")
    return {True: write_tiny_sdxl_pipeline(root / "zeros"),
            False: write_tiny_sdxl_pipeline(root / "encoded", force_zeros_for_empty_prompt=False)}


@pytest.fixture(scope="module")
def pipelines(folders):
    """diffusers' StableDiffusionXLPipeline loaded from each folder."""
    return {zeros: StableDiffusionXLPipeline.from_pretrained(
        str(folder), local_files_only=True, add_watermarker=False)
        for zeros, folder in folders.items()}


def latents(batch=4, seed=1):
    """Test latents (batch, 4, 8, 8), standard normal times 2."""
    return noisy((batch, 4, 8, 8), seed, scale=2.0)


def unet_call(denoiser, *args):
    """The denoiser's output and its UNet's one call: (sample, timestep), kwargs, output."""
    seen = []
    handle = denoiser.inner.unet.register_forward_hook(
        lambda module, a, kw, out: seen.append((a, kw, out[0])), with_kwargs=True)
    try:
        output = denoiser(*args)
    finally:
        handle.remove()
    assert len(seen) == 1
    return output, *seen[0]


# --- (a) the UNet call is the pipeline's, bit for bit ------------------------------------------


@pytest.mark.parametrize(("zeros", "negative", "w", "original", "crop"), [
    (True, "", 5.0, None, [0, 0]),
    (False, "", 5.0, None, [0, 0]),
    (True, "blurry, dark", 3.0, [32, 24], [2, 4]),
    (True, "", 1.0, 48, [0, 0]),
], ids=["zeros", "empty-encoded", "negative-prompt-sizes", "no-guidance"])
def test_unet_call_equals_the_pipelines_bit_for_bit(folders, pipelines, zeros, negative, w,
                                                    original, crop):
    denoiser = load_sdxl(folders[zeros], None, None, PROMPTS, w, negative,
                         original_size=original, crops_coords_top_left=crop)
    pipe = pipelines[zeros]
    x, sigma = latents(), denoiser.inner.t_to_sigma(torch.tensor(500.0))
    with torch.no_grad(), skip_tuning(denoiser, denoiser.skips, [1.0] * len(denoiser.skips)):
        _, (sample, t), kwargs, out = unet_call(denoiser, x, sigma,
                                                denoiser.condition_for(SEEDS))
        guided = w != 1.0
        encoded = [pipe.encode_prompt(PROMPTS[s % len(PROMPTS)], device="cpu",
                                      do_classifier_free_guidance=guided,
                                      negative_prompt=negative or None) for s in SEEDS]
        context = torch.cat([e[0] for e in encoded])
        pooled = torch.cat([e[2] for e in encoded])
        if guided:
            context = torch.cat([torch.cat([e[1] for e in encoded]), context])
            pooled = torch.cat([torch.cat([e[3] for e in encoded]), pooled])
        size = (IMAGE_SIZE, IMAGE_SIZE)
        original_size = size if original is None else (
            (original, original) if isinstance(original, int) else tuple(original))
        ids = pipe._get_add_time_ids(original_size, tuple(crop), size, dtype=context.dtype,
                                     text_encoder_projection_dim=PROJECTION)
        ids = ids.repeat(len(context), 1)
        expected = pipe.unet(sample, t, encoder_hidden_states=context, return_dict=False,
                             added_cond_kwargs={"text_embeds": pooled, "time_ids": ids})[0]
    assert torch.equal(kwargs["encoder_hidden_states"], context)
    assert torch.equal(kwargs["added_cond_kwargs"]["text_embeds"], pooled)
    assert torch.equal(kwargs["added_cond_kwargs"]["time_ids"], ids)
    if guided and zeros and not negative:  # the unconditional half is all zeros
        assert not context[:len(SEEDS)].any() and not pooled[:len(SEEDS)].any()
    assert torch.equal(t, torch.full((len(sample),), 500.0))
    c_in = 1 / (sigma.float() ** 2 + 1).sqrt()
    assert torch.equal(sample, torch.cat([c_in * x] * (2 if guided else 1)))
    assert torch.equal(out, expected)


def test_decode_uses_the_sdxl_vae_scaling_and_upcasts(folders, pipelines):
    denoiser = load_sdxl(folders[True], None, None, PROMPTS)
    vae = pipelines[True].vae
    z = latents(2)
    assert vae.config.scaling_factor == 0.13025
    with torch.no_grad():
        assert torch.equal(denoiser.decode(z), vae.decode(z / 0.13025).sample)
        # force_upcast: a float16 VAE decodes in float32 and is float16 again afterwards
        denoiser.vae.half()
        rounded = copy.deepcopy(denoiser.vae).float()
        images = denoiser.decode(z)
        assert denoiser.vae.dtype == torch.float16 and images.dtype == torch.float32
        assert torch.equal(images, rounded.decode(z / 0.13025).sample)
        # a VAE with latents_mean and latents_std denormalizes with them
        torch.manual_seed(3)
        mean, std = (0.1, -0.2, 0.3, 0.0), (1.5, 0.5, 1.0, 2.0)
        denoiser.vae = AutoencoderKL(**TINY_SDXL_VAE, latents_mean=mean,
                                     latents_std=std).eval()
        shape = (1, 4, 1, 1)
        x0 = (z * torch.tensor(std).reshape(shape) / 0.13025 + torch.tensor(mean).reshape(shape))
        assert torch.equal(denoiser.decode(z), denoiser.vae.decode(x0).sample)


# --- (b) a schedule scales the skips as a forward without hooks does ---------------------------


class ScaledSkips(nn.Module):
    """An up block whose incoming encoder residuals are multiplied by rhos before it runs.

    The block pops its residuals from the end of the tuple, one per resnet, and concatenates
    each after the decoder features: resnet j takes ``res_hidden_states_tuple[-1 - j]``.
    """

    def __init__(self, block: nn.Module, rhos) -> None:
        super().__init__()
        self.block, self.rhos = block, torch.tensor(rhos, dtype=torch.float32)
        self.resnets = block.resnets  # the UNet reads how many residuals the block takes
        self.has_cross_attention = getattr(block, "has_cross_attention", False)

    def forward(self, res_hidden_states_tuple, **kwargs):
        n = len(res_hidden_states_tuple)
        scaled = tuple(r * self.rhos[n - 1 - k] for k, r in enumerate(res_hidden_states_tuple))
        return self.block(res_hidden_states_tuple=scaled, **kwargs)


def reference(denoiser, rhos, *args):
    """The denoiser's output with its up blocks wrapped in ScaledSkips (no hooks)."""
    blocks = denoiser.inner.unet.up_blocks
    originals, start = list(blocks), 0
    for i, block in enumerate(originals):
        blocks[i] = ScaledSkips(block, rhos[start:start + len(block.resnets)])
        start += len(block.resnets)
    try:
        assert count_pre_hooks(denoiser) == 0
        return denoiser(*args)
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block


@pytest.mark.parametrize("w", [1.0, 3.0])
def test_a_schedule_equals_the_reference_forward(folders, w):
    denoiser = load_sdxl(folders[True], None, None, PROMPTS, w, "blurry")
    x, sigma, cond = latents(), torch.tensor(1.7), denoiser.condition_for(SEEDS)
    rhos = [0.3 + 0.1 * i for i in range(len(denoiser.skips))]
    with torch.no_grad():
        plain = denoiser(x, sigma, cond)
        assert torch.equal(reference(denoiser, [1.0] * len(rhos), x, sigma, cond), plain)
        with skip_tuning(denoiser, denoiser.skips, rhos):
            hooked = denoiser(x, sigma, cond)
        expected = reference(denoiser, rhos, x, sigma, cond)
    assert not torch.allclose(hooked, plain, atol=1e-3)
    assert torch.equal(hooked, expected)


# --- (c) prompts by seed, guidance ---------------------------------------------------------------


def test_images_follow_the_prompt_of_their_seed(folders):
    denoiser = load_sdxl(folders[True], None, None, PROMPTS, 2.0)
    sigmas = edm_sigmas(2, sigma_min=0.03, sigma_max=14.6)
    together = generate(denoiser, range(4), sigmas)
    assert together.shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert together.abs().max() <= 1.0
    alone = generate(denoiser, [3], sigmas)
    torch.testing.assert_close(together[3:], alone, rtol=0, atol=1e-4)
    cond = denoiser.condition_for([0, 3, 1])
    assert torch.equal(cond[0], cond[1])  # seed 3 uses prompt 3 % 3 = 0
    assert not torch.equal(cond[0], cond[2])
    assert not torch.equal(together[0], together[3])  # same prompt, other noise


def test_guidance_combines_two_passes_and_follows_the_attribute(folders):
    denoiser = load_sdxl(folders[True], None, None, PROMPTS)
    x, sigma, cond = latents(2), torch.full((2,), 2.0), denoiser.condition_for([0, 1])
    with torch.no_grad():
        empty = denoiser.unconditional().expand_as(cond)
        assert not empty.any()  # force_zeros_for_empty_prompt: context and pooled all zeros
        d_prompt = denoiser.inner(x, sigma, denoiser.unet_condition(cond))
        d_empty = denoiser.inner(x, sigma, denoiser.unet_condition(empty))
        assert torch.equal(denoiser(x, sigma, cond), d_prompt)  # w = 1: one pass
        for w in (3.0, 5.0):  # a search sets it per trial
            denoiser.guidance_scale = w
            torch.testing.assert_close(denoiser(x, sigma, cond),
                                       d_empty + w * (d_prompt - d_empty),
                                       rtol=1e-4, atol=1e-5)
        denoiser.negative_prompt = "blurry"
        assert torch.equal(denoiser.unconditional(), denoiser.embed("blurry"))
        denoiser.guidance_scale = 1.0
        assert torch.equal(denoiser(x, sigma, cond), d_prompt)


def test_empty_negative_prompt_is_encoded_without_force_zeros(folders):
    encoded = load_sdxl(folders[False], None, None, PROMPTS, 2.0)
    assert encoded.force_zeros_for_empty_prompt is False
    assert encoded.unconditional().any()
    assert torch.equal(encoded.unconditional(), encoded.embed(""))
    assert force_zeros_for_empty_prompt(folders[True]) is True
    assert force_zeros_for_empty_prompt(folders[True] / "unet") is True  # no model_index.json


# --- (d) registration, settings, the command line ----------------------------------------------


def test_sdxl_is_a_registered_text_to_image_kind():
    assert "sdxl" in MODEL_KINDS and "sdxl" in TEXT_TO_IMAGE_KINDS
    assert LOADERS["sdxl"].__name__ == "_sdxl"


@pytest.mark.parametrize(("key", "value"), [
    ("guidance_scale", 0.5), ("negative_prompt", 3), ("prediction_type", "sample"),
    ("target_size", 0), ("original_size", [1024]), ("crops_coords_top_left", [0, -1]),
    ("scheduler", "scaled"), ("scheduler.beta_schedule", "cosine"),
    ("scheduler.beta_end", 0.0001), ("scheduler.num_train_timesteps", 1),
    ("prompts", "no-such-file.txt"),
])
def test_settings_name_the_bad_key(key, value):
    section = OmegaConf.load(CONFIG)
    section.path = "pipeline"
    OmegaConf.update(section, key, value, force_add=True)
    with pytest.raises(ConfigError) as err:
        sdxl_settings(section)
    assert err.value.key == f"model.{key}"
    assert "\n" not in str(err.value)


def test_settings_of_the_shipped_config():
    section = OmegaConf.load(CONFIG)
    settings = sdxl_settings(section)
    assert settings["target_size"] == 1024 and settings["crops_coords_top_left"] == [0, 0]
    assert settings["scheduler_config"] == {k: SDXL_SCHEDULER[k] for k in (
        "num_train_timesteps", "beta_start", "beta_end", "beta_schedule")}


def test_loading_errors_name_the_key(folders, tmp_path):
    sd = write_tiny_sd_pipeline(tmp_path / "sd")
    with pytest.raises(ConfigError, match="text_encoder_2/") as err:
        load_sdxl(sd)
    assert err.value.key == "model.path"
    with pytest.raises(ConfigError, match="multiple of 2") as err:
        load_sdxl(folders[True], target_size=15)
    assert err.value.key == "model.target_size"


def test_cli_inspects_and_samples(folders, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    model = ["model=sdxl", f"model.path={folders[True]}", f"model.prompts={prompts}",
             f"model.target_size={IMAGE_SIZE}", f"out_dir={tmp_path / 'out'}", "device=cpu"]
    shown = run_cli("inspect", *model)
    assert shown.returncode == 0, shown.stderr
    assert "6 skips" in shown.stdout and "inner.unet.up_blocks.1.resnets.2" in shown.stdout
    sample = run_cli("sample", *model, "sample.score=false", "sample.n=2", "sampler.steps=2",
                     "sampler.sigma_min=0.03", "sampler.sigma_max=14.6", "model.guidance_scale=2")
    assert sample.returncode == 0, sample.stderr
    npz = np.load(tmp_path / "out" / "samples" / "config" / "samples.npz")
    assert npz["images"].shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    refused = run_cli("inspect", *model, "model.crops_coords_top_left=[1]")
    assert refused.returncode == 2 and "model.crops_coords_top_left" in refused.stderr


# --- (e) the published SDXL base layout ----------------------------------------------------------

# stabilityai/stable-diffusion-xl-base-1.0: unet/config.json (the keys that shape the network)
SDXL_BASE_UNET = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280), "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20), "cross_attention_dim": 2048,
    "use_linear_projection": True, "norm_num_groups": 32, "flip_sin_to_cos": True,
    "freq_shift": 0, "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
}
# text_encoder/ (CLIP ViT-L/14) and text_encoder_2/ (OpenCLIP ViT-bigG/14) configs
SDXL_TEXT_ENCODER = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                     "num_hidden_layers": 12, "projection_dim": 768, "hidden_act": "quick_gelu"}
SDXL_TEXT_ENCODER_2 = {"hidden_size": 1280, "intermediate_size": 5120,
                       "num_attention_heads": 20, "num_hidden_layers": 32,
                       "projection_dim": 1280, "hidden_act": "gelu"}
SDXL_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
            "block_out_channels": (128, 256, 512, 512),
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4, "sample_size": 1024,
            "scaling_factor": 0.13025, "force_upcast": True}


def test_the_sdxl_base_layout_has_nine_skips(tmp_path):
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_BASE_UNET)
        parts = (CLIPTextModel(CLIPTextConfig(**SDXL_TEXT_ENCODER)),
                 CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_ENCODER_2)))
        vae = AutoencoderKL(**SDXL_VAE)
    assert len(find_diffusers_skips(unet)) == 9
    vocab, merges = tiny_tokenizer_files(tmp_path)
    tokenizers = [CLIPTokenizer(str(vocab), str(merges), model_max_length=77) for _ in "ab"]
    scheduler = {k: SDXL_SCHEDULER[k] for k in ("num_train_timesteps", "beta_start",
                                                "beta_end", "beta_schedule")}
    inner = DiffusersConditionDenoiser(unet, alphas_cumprod_from_config(scheduler))
    denoiser = SDXLDenoiser(inner, *parts, *tokenizers, vae)  # the parts fit together
    assert denoiser.target_size == 1024 and denoiser.img_resolution == 128
    assert denoiser.time_ids.tolist() == [[1024, 1024, 0, 0, 1024, 1024]]
    skips = denoiser.skips
    assert len(skips) == 9
    assert [p.module_name for p in skips] == [
        f"inner.unet.up_blocks.{i}.resnets.{j}" for i in range(3) for j in range(3)]
    assert [p.resolution for p in skips] == [32] * 3 + [64] * 3 + [128] * 3
    assert [p.skip_channels for p in skips] == [1280, 1280, 640, 640, 640, 320, 320, 320, 320]
