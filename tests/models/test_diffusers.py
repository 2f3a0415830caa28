"""diffusers UNets: skip discovery, EDM-form adapters, loading from local folders."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

import numpy as np
import torch
import yaml
from diffusers import DDPMScheduler, UNet2DConditionModel, UNet2DModel

from skipsearch.configuration.errors import ConfigError
from skipsearch.models.diffusers_unet import (
    DiffusersConditionDenoiser,
    DiffusersUNet2DDenoiser,
    alphas_cumprod_from_config,
    find_diffusers_skips,
    load_diffusers_condition_unet,
    load_diffusers_unet2d,
    sigma_to_timestep,
    timestep_to_sigma,
    vp_sigmas,
)
from skipsearch.tuning.skips import skip_tuning
from tests.conftest import run_cli
from tests.support.diffusers_nets import (
    LINEAR,
    TINY_UNET2D,
    count_pre_hooks,
    noisy,
    tiny,
    tiny_unet2d,
)
from tests.support.sd_pipeline import TINY_SD_UNET
from tests.support.timesteps import timesteps_seen

# The Stable Diffusion 1.x layout at reduced width and depth.
TINY_SD = TINY_SD_UNET
# Published layouts, built on the meta device only.
SD1_LAYOUT = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
}
DDPM_CIFAR10_LAYOUT = {
    "sample_size": 32, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "block_out_channels": (128, 256, 256, 256), "attention_head_dim": None,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1,
}
SDXL_LAYOUT = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280), "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20), "cross_attention_dim": 2048,
    "use_linear_projection": True, "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
}
SCALED_LINEAR = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                 "beta_schedule": "scaled_linear"}


@pytest.fixture
def unet2d():
    return tiny_unet2d()


@pytest.fixture
def sd_unet():
    return tiny(UNet2DConditionModel, TINY_SD)


def text_states(batch=2, seed=2):
    """Stand-in text embeddings (batch, sequence, cross_attention_dim)."""
    return noisy((batch, 5, TINY_SD["cross_attention_dim"]), seed)


# --- reference forwards written from the paper, without hooks ----------------------------------


def up_path(unet, h, residuals, emb, rhos, attend):
    """The decoder: each resnet takes concat(h, rho_i * d_i), d_i popped from the encoder."""
    i = 0
    for block in unet.up_blocks:
        attentions = getattr(block, "attentions", None) or [None] * len(block.resnets)
        for resnet, attn in zip(block.resnets, attentions, strict=True):
            h = resnet(torch.cat([h, rhos[i] * residuals.pop()], dim=1), emb)
            h = h if attn is None else attend(attn, h)
            i += 1
        for up in block.upsamplers or []:
            h = up(h)
    assert i == len(rhos) and not residuals
    return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))


def reference_unet2d(unet, x, t, rhos):
    """UNet2DModel's output with skip d_i scaled by rhos[i] (i = 0 consumed first)."""
    emb = unet.time_embedding(unet.time_proj(t).to(x.dtype))
    h = unet.conv_in(x)
    residuals = [h]
    for block in unet.down_blocks:
        h, res = block(hidden_states=h, temb=emb)
        residuals.extend(res)
    h = unet.mid_block(h, emb)
    return up_path(unet, h, residuals, emb, rhos, lambda attn, h: attn(h))


def reference_sd(unet, x, t, states, rhos):
    """UNet2DConditionModel's output with skip d_i scaled by rhos[i]."""
    emb = unet.time_embedding(unet.time_proj(t).to(x.dtype))
    h = unet.conv_in(x)
    residuals = [h]
    for block in unet.down_blocks:
        cross = getattr(block, "has_cross_attention", False)
        extra = {"encoder_hidden_states": states} if cross else {}
        h, res = block(hidden_states=h, temb=emb, **extra)
        residuals.extend(res)
    h = unet.mid_block(h, emb, encoder_hidden_states=states)

    def attend(attn, h):
        return attn(h, encoder_hidden_states=states, return_dict=False)[0]

    return up_path(unet, h, residuals, emb, rhos, attend)


def test_reference_forwards_reproduce_the_models(unet2d, sd_unet):
    t = torch.tensor([10.0, 700.0])
    x, z, states = noisy((2, 3, 16, 16)), noisy((2, 4, 8, 8)), text_states()
    ones2d, ones_sd = [1.0] * len(find_diffusers_skips(unet2d)), [1.0] * 4
    torch.testing.assert_close(reference_unet2d(unet2d, x, t, ones2d), unet2d(x, t).sample)
    torch.testing.assert_close(reference_sd(sd_unet, z, t, states, ones_sd),
                               sd_unet(z, t, encoder_hidden_states=states).sample)


# --- skip discovery ----------------------------------------------------------------------------


def test_tiny_skips_are_listed_bottom_to_top(unet2d, sd_unet):
    skips = find_diffusers_skips(unet2d)
    assert len(skips) == sum(len(b.resnets) for b in unet2d.up_blocks) == 9
    assert [p.index for p in skips] == list(range(9))
    assert [p.module_name for p in skips] == [
        f"up_blocks.{i}.resnets.{j}" for i in range(3) for j in range(3)]
    assert [p.level for p in skips] == [2] * 3 + [1] * 3 + [0] * 3
    assert [p.resolution for p in skips] == [4] * 3 + [8] * 3 + [16] * 3
    sd = find_diffusers_skips(sd_unet, prefix="unet.")
    assert [p.module_name for p in sd] == [
        "unet.up_blocks.0.resnets.0", "unet.up_blocks.0.resnets.1",
        "unet.up_blocks.1.resnets.0", "unet.up_blocks.1.resnets.1"]
    assert [(p.level, p.resolution) for p in sd] == [(1, 4), (1, 4), (0, 8), (0, 8)]


def encoder_residual_channels(unet) -> list[int]:
    """Channels of the encoder residuals in the order the decoder pops them (last first)."""
    channels = [unet.conv_in.out_channels]
    for block in unet.down_blocks:
        channels += [r.out_channels for r in block.resnets]
        if getattr(block, "downsamplers", None) is not None:
            channels.append(channels[-1])
    return channels[::-1]


@pytest.mark.parametrize(("model_class", "layout", "count", "levels"), [
    (UNet2DConditionModel, SD1_LAYOUT, 12, 4),
    (UNet2DModel, DDPM_CIFAR10_LAYOUT, 4 * (2 + 1), 4),
    (UNet2DConditionModel, SDXL_LAYOUT, 9, 3),
], ids=["sd1", "ddpm-cifar10", "sdxl"])
def test_published_layouts(model_class, layout, count, levels):
    with torch.device("meta"):
        unet = model_class(**layout)
    skips = find_diffusers_skips(unet)
    per_block = layout["layers_per_block"] + 1
    assert len(skips) == len(layout["up_block_types"]) * per_block == count
    assert [p.skip_channels for p in skips] == encoder_residual_channels(unet)
    assert [p.in_channels for p in skips] == [
        r.conv1.in_channels for b in unet.up_blocks for r in b.resnets]
    expected_levels = [lv for lv in range(levels - 1, -1, -1) for _ in range(per_block)]
    assert [p.level for p in skips] == expected_levels
    assert [p.resolution for p in skips] == [layout["sample_size"] >> lv
                                             for lv in expected_levels]


def test_sd1_skip_channels():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD1_LAYOUT)
    assert [p.skip_channels for p in find_diffusers_skips(unet)] == [
        1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320, 320]


def capture_decoder(unet, call) -> dict:
    """Each up block's inputs, each resnet's input and each resnet stage's output in one call."""
    seen, handles = {}, []

    def keep(key, value):
        seen[key] = value if isinstance(value, torch.Tensor) else value[0]

    for i, block in enumerate(unet.up_blocks):
        def block_inputs(module, args, kwargs, i=i):
            h = kwargs.get("hidden_states", args[0] if args else None)
            res = kwargs.get("res_hidden_states_tuple", args[1] if len(args) > 1 else None)
            seen["block", i] = (h, res)

        handles.append(block.register_forward_pre_hook(block_inputs, with_kwargs=True))
        for j, resnet in enumerate(block.resnets):
            handles.append(resnet.register_forward_hook(
                lambda m, a, o, key=("in", i, j): keep(key, a[0])))
        for j, stage in enumerate(getattr(block, "attentions", None) or block.resnets):
            handles.append(stage.register_forward_hook(
                lambda m, a, o, key=("out", i, j): keep(key, o)))
    try:
        with torch.no_grad():
            call()
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("which", ["unet2d", "sd", "sd-without-mid-block"])
def test_block_input_is_decoder_features_then_the_skip(which, unet2d, sd_unet):
    if which == "unet2d":
        unet = unet2d
        seen = capture_decoder(unet, lambda: unet(noisy((2, 3, 16, 16)), 3))
    else:
        unet = sd_unet if which == "sd" else tiny(UNet2DConditionModel, TINY_SD,
                                                  mid_block_type=None)
        assert (unet.mid_block is None) == (which != "sd")
        seen = capture_decoder(unet, lambda: unet(noisy((2, 4, 8, 8)), 3,
                                                  encoder_hidden_states=text_states()))
    for point in find_diffusers_skips(unet):
        i, j = (int(part) for part in point.module_name.split(".")[1::2])
        block_h, residuals = seen["block", i]
        x = seen["in", i, j]
        h = block_h if j == 0 else seen["out", i, j - 1]
        skip = residuals[-1 - j]
        assert x.shape[1] == point.in_channels
        assert skip.shape[1] == point.skip_channels
        split = point.in_channels - point.skip_channels
        assert torch.equal(x[:, :split], h)
        assert torch.equal(x[:, split:], skip)


# --- noise schedule and adapters ---------------------------------------------------------------


@pytest.mark.parametrize("config", [LINEAR, SCALED_LINEAR], ids=["linear", "scaled_linear"])
def test_alphas_cumprod_match_diffusers(config):
    ours = alphas_cumprod_from_config(config)
    theirs = DDPMScheduler(**config).alphas_cumprod.to(torch.float64)
    assert ours.dtype == torch.float64 and ours.shape == (1000,)
    torch.testing.assert_close(ours, theirs, rtol=2e-6, atol=0)


def test_sigma_timestep_round_trip():
    abar = alphas_cumprod_from_config(SCALED_LINEAR)
    log_sigmas = vp_sigmas(abar).log()
    t = torch.cat([torch.arange(0, 1000, 37.0), torch.linspace(0, 999, 41) + 0.3])
    t = t.clamp(max=999).to(torch.float64)
    torch.testing.assert_close(sigma_to_timestep(timestep_to_sigma(t, log_sigmas), log_sigmas),
                               t, rtol=0, atol=1e-9)
    sigmas = vp_sigmas(abar)
    s = torch.logspace(np.log10(sigmas[0]), np.log10(sigmas[-1]), 57, dtype=torch.float64)
    torch.testing.assert_close(timestep_to_sigma(sigma_to_timestep(s, log_sigmas), log_sigmas),
                               s, rtol=1e-12, atol=0)
    integer = torch.tensor([0, 1, 250, 998, 999])
    torch.testing.assert_close(timestep_to_sigma(integer, log_sigmas),
                               ((1 - abar[integer]) / abar[integer]).sqrt(), rtol=1e-12, atol=0)
    # Between discrete steps, log sigma is linear in t.
    mid = timestep_to_sigma(torch.tensor([250.5]), log_sigmas)
    torch.testing.assert_close(mid.log()[0], (log_sigmas[250] + log_sigmas[251]) / 2)
    ends = sigma_to_timestep(torch.tensor([sigmas[0] / 2, sigmas[-1] * 2]), log_sigmas)
    assert ends.tolist() == [0.0, 999.0]


@pytest.mark.parametrize("config", [LINEAR, SCALED_LINEAR])
def test_each_training_level_reaches_the_unet_as_its_integer_timestep(config, unet2d):
    """Regression: the level was rounded to float32 before its timestep was found."""
    start, end = config["beta_start"], config["beta_end"]
    if config["beta_schedule"] == "linear":  # DDPM: beta linear in t
        betas = [start + (end - start) * i / 999 for i in range(1000)]
    else:  # Stable Diffusion: sqrt(beta) linear in t
        betas = [(start**0.5 + (end**0.5 - start**0.5) * i / 999) ** 2 for i in range(1000)]
    levels, abar = [], 1.0
    for beta in betas:
        abar *= 1 - beta
        levels.append(((1 - abar) / abar) ** 0.5)
    denoiser = DiffusersUNet2DDenoiser(unet2d, alphas_cumprod_from_config(config))
    fed = [float(t) for t in timesteps_seen(denoiser, unet2d, levels)]
    wrong = [(t, got) for t, got in enumerate(fed) if got != t]
    assert not wrong, f"{len(wrong)} levels missed their timestep, e.g. {wrong[:3]}"
    assert denoiser.sigma_range == pytest.approx((levels[0], levels[-1]), rel=1e-12)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_adapters_match_the_ddpm_definitions(prediction_type, unet2d):
    """A UNet predicting the true eps (or v) makes D return the clean image x0 exactly."""
    scheduler = DDPMScheduler(**LINEAR, prediction_type=prediction_type)
    denoiser = DiffusersUNet2DDenoiser(unet2d, alphas_cumprod_from_config(LINEAR),
                                       prediction_type)
    steps = torch.tensor([0, 37, 500, 999])
    x0, eps = noisy((4, 3, 16, 16), 3), noisy((4, 3, 16, 16), 4)
    x_vp = scheduler.add_noise(x0, eps, steps)  # sqrt(abar) x0 + sqrt(1 - abar) eps
    target = eps if prediction_type == "epsilon" else scheduler.get_velocity(x0, eps, steps)
    abar = scheduler.alphas_cumprod[steps].reshape(-1, 1, 1, 1)
    sigma = ((1 - abar) / abar).sqrt()

    def oracle(module, args, kwargs, output):
        torch.testing.assert_close(args[0], x_vp, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(args[1], steps.float(), rtol=0, atol=1e-3)
        return (target,)

    handle = unet2d.register_forward_hook(oracle, with_kwargs=True)
    try:
        denoised = denoiser(x_vp / abar.sqrt(), sigma.flatten())  # EDM: x = x0 + sigma eps
    finally:
        handle.remove()
    torch.testing.assert_close(denoised, x0, rtol=0, atol=2e-4)


def test_denoiser_attributes(unet2d, sd_unet):
    denoiser = DiffusersUNet2DDenoiser(unet2d, alphas_cumprod_from_config(LINEAR))
    sigmas = vp_sigmas(alphas_cumprod_from_config(LINEAR))
    assert (denoiser.sigma_min, denoiser.sigma_max) == (float(sigmas[0]), float(sigmas[-1]))
    assert (denoiser.img_channels, denoiser.img_resolution, denoiser.label_dim) == (3, 16, 0)
    assert [p.module_name for p in denoiser.skips] == [
        "unet." + p.module_name for p in find_diffusers_skips(unet2d)]
    cond = DiffusersConditionDenoiser(sd_unet, alphas_cumprod_from_config(SCALED_LINEAR))
    assert (cond.img_channels, cond.img_resolution, cond.label_dim) == (4, 8, 0)
    classes = tiny(UNet2DModel, TINY_UNET2D, num_class_embeds=10)
    labeled = DiffusersUNet2DDenoiser(classes, alphas_cumprod_from_config(LINEAR))
    assert labeled.label_dim == 10


def test_class_labels_reach_the_unet_as_one_hot_or_indices():
    unet = tiny(UNet2DModel, TINY_UNET2D, num_class_embeds=10)
    denoiser = DiffusersUNet2DDenoiser(unet, alphas_cumprod_from_config(LINEAR))
    x, sigma = noisy((2, 3, 16, 16), scale=2.0), torch.tensor([0.5, 3.0])
    one_hot = torch.nn.functional.one_hot(torch.tensor([3, 7]), 10).float()
    with torch.no_grad():
        a = denoiser(x, sigma, one_hot)
        b = denoiser(x, sigma, torch.tensor([3, 7]))
        c = denoiser(x, sigma, torch.tensor([4, 7]))
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], c[0]) and torch.equal(a[1], c[1])


def test_condition_adapter_conditioning_forms(sd_unet):
    states = text_states()
    abar = alphas_cumprod_from_config(SCALED_LINEAR)
    z, sigma = noisy((2, 4, 8, 8), scale=3.0), torch.tensor([1.0, 5.0])
    plain = DiffusersConditionDenoiser(sd_unet, abar)
    default = DiffusersConditionDenoiser(sd_unet, abar, condition=states[:1])
    with torch.no_grad():
        direct = plain(z, sigma, states)
        as_dict = plain(z, sigma, {"encoder_hidden_states": states})
        broadcast = default(z, sigma)
        first = plain(z, sigma, states[:1].expand(2, -1, -1))
    assert torch.equal(direct, as_dict)
    assert torch.equal(broadcast, first)
    assert not torch.allclose(direct, first)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        plain(z, sigma)


# --- hooks through the adapters ----------------------------------------------------------------


def adapters(unet2d, sd_unet):
    """(denoiser, x, sigma, conditioning) for both adapters, v prediction for the SD one."""
    return [
        (DiffusersUNet2DDenoiser(unet2d, alphas_cumprod_from_config(LINEAR)),
         noisy((2, 3, 16, 16), scale=2.0), torch.tensor([0.3, 8.0]), None),
        (DiffusersConditionDenoiser(sd_unet, alphas_cumprod_from_config(SCALED_LINEAR),
                                    "v_prediction"),
         noisy((2, 4, 8, 8), scale=2.0), torch.tensor([0.3, 8.0]), text_states()),
    ]


def test_identity_at_rho_one_is_bit_exact_through_the_adapters(unet2d, sd_unet):
    for denoiser, x, sigma, cond in adapters(unet2d, sd_unet):
        with torch.no_grad():
            plain = denoiser(x, sigma, cond)
            with skip_tuning(denoiser, denoiser.skips, [1.0] * len(denoiser.skips)):
                hooked = denoiser(x, sigma, cond)
        assert torch.equal(plain, hooked)
        assert count_pre_hooks(denoiser) == 0


def test_rho_matches_the_reference_forward_through_the_adapters(unet2d, sd_unet):
    for denoiser, x, sigma, cond in adapters(unet2d, sd_unet):
        rhos = [0.3 + 0.1 * i for i in range(len(denoiser.skips))]
        with torch.no_grad():
            plain = denoiser(x, sigma, cond)
            with skip_tuning(denoiser, denoiser.skips, rhos):
                hooked = denoiser(x, sigma, cond)
            s = sigma.reshape(-1, 1, 1, 1)
            x_in, t = x / (s**2 + 1).sqrt(), denoiser.sigma_to_t(sigma).float()
            if cond is None:
                out = reference_unet2d(denoiser.unet, x_in, t, rhos)
            else:
                out = reference_sd(denoiser.unet, x_in, t, cond, rhos)
        expected = denoiser.prediction.denoised(x, s, out)
        assert not torch.allclose(hooked, plain, atol=1e-3)
        torch.testing.assert_close(hooked, expected, rtol=1e-5, atol=1e-5)


# --- loading from local folders ----------------------------------------------------------------


def test_load_unet2d_from_a_local_folder(unet2d, tmp_path):
    unet2d.save_pretrained(tmp_path / "ddpm")
    scheduler = DDPMScheduler(**LINEAR, prediction_type="v_prediction")
    scheduler.save_config(tmp_path / "ddpm" / "scheduler")
    loaded = load_diffusers_unet2d(tmp_path / "ddpm", tmp_path / "ddpm" / "scheduler")
    assert loaded.prediction.name == "v_prediction"
    assert not any(p.requires_grad for p in loaded.parameters())
    built = DiffusersUNet2DDenoiser(unet2d, alphas_cumprod_from_config(LINEAR), "v_prediction")
    x, sigma = noisy((2, 3, 16, 16)), torch.tensor([0.5, 4.0])
    with torch.no_grad():
        assert torch.equal(loaded(x, sigma), built(x, sigma))
    as_eps = load_diffusers_unet2d(tmp_path / "ddpm", LINEAR, "epsilon")
    assert as_eps.prediction.name == "epsilon"


def test_load_condition_unet_from_a_pipeline_folder(sd_unet, tmp_path):
    sd_unet.save_pretrained(tmp_path / "sd" / "unet")
    loaded = load_diffusers_condition_unet(tmp_path / "sd", SCALED_LINEAR, subfolder="unet")
    built = DiffusersConditionDenoiser(sd_unet, alphas_cumprod_from_config(SCALED_LINEAR))
    z, sigma, states = noisy((2, 4, 8, 8)), torch.tensor([0.5, 4.0]), text_states()
    with torch.no_grad():
        assert torch.equal(loaded(z, sigma, states), built(z, sigma, states))


def test_loading_errors_name_the_key(tmp_path, unet2d):
    with pytest.raises(ConfigError, match=r"model\.path") as err:
        load_diffusers_unet2d(tmp_path / "missing", LINEAR)
    assert err.value.value == str(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"model\.path"):
        load_diffusers_unet2d(tmp_path / "empty", LINEAR)
    unet2d.save_pretrained(tmp_path / "ddpm")
    with pytest.raises(ConfigError, match=r"model\.scheduler\.beta_schedule"):
        load_diffusers_unet2d(tmp_path / "ddpm", {**LINEAR, "beta_schedule": "cosine"})
    with pytest.raises(ConfigError, match=r"model\.prediction_type"):
        load_diffusers_unet2d(tmp_path / "ddpm", LINEAR, "sample")
    with pytest.raises(ConfigError, match=r"model\.scheduler="):
        load_diffusers_unet2d(tmp_path / "ddpm", tmp_path / "no_scheduler.json")


def test_a_short_sweep_on_a_diffusers_unet(tiny_weights, tmp_path):
    folder = tmp_path / "ddpm-unet"
    config = {**TINY_UNET2D, "in_channels": 1, "out_channels": 1, "num_class_embeds": 10}
    tiny(UNet2DModel, config).save_pretrained(folder)
    out = tmp_path / "out"
    result = run_cli("sweep", "model=diffusers_unet2d", f"model.path={folder}",
                     f"metric.weights={tiny_weights['classifier']}", f"out_dir={out}",
                     "metric.n_samples=12", "metric.final_samples=12",
                     "batch_size=6", "logger=none", "device=cpu",
                     "search.steps=[2]", "search.n_trials=2")
    assert result.returncode == 0, result.stderr
    exported = yaml.safe_load(
        (out / "exports" / "diffusers_unet2d-heun-linear" / "best.yaml").read_text())
    assert len(exported["schedule"]["coefficients"]) == 9
    assert exported["schedule"]["skips"][0]["module_name"] == "unet.up_blocks.0.resnets.0"
