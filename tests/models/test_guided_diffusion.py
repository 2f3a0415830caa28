"""ADM and LDM in the guided-diffusion layout: keys, schedules, skips, hooks, inspect.

Their sweeps with Heun and UniPC run in test_family_sweeps.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skipsearch.configuration.errors import ConfigError
from skipsearch.configuration.paths import CONF_DIR
from skipsearch.models.guided_diffusion import load_adm, load_ldm
from skipsearch.models.guided_unet import GuidedUNet, GuidedUNetConfig
from skipsearch.models.vp_schedules import adm_cosine_betas, adm_linear_betas
from skipsearch.tuning.skips import skip_tuning
from tests.conftest import run_cli
from tests.support.guided_format import (
    ADM_LAYOUT,
    LDM_LAYOUT,
    TINY_ADM,
    write_adm,
    write_autoencoder,
    write_ldm,
)
from tests.support.timesteps import timesteps_seen

ADM_FLAGS = {"image_size": 16, "num_res_blocks": 1, "channel_mult": [1, 2],
             "attention_resolutions": [8], "num_head_channels": 16,
             "use_new_attention_order": True, "resblock_updown": True}
LDM_FLAGS = {"image_size": 8, "num_res_blocks": 1, "channel_mult": [1, 2],
             "attention_resolutions": [4], "num_heads": 1}


def state_counts(cfg: GuidedUNetConfig) -> tuple[int, int]:
    """Tensors and parameters of the network's state dict (built on the meta device)."""
    with torch.device("meta"):
        state = GuidedUNet(cfg).state_dict()
    return len(state), sum(v.numel() for v in state.values())


# Counts of the published networks, from guided-diffusion's and latent-diffusion's own model
# code at their published settings: ADM 64 (296M), 128, 256 (554M), 512; LDM cin256-v2 (401M).
ADM = {"num_classes": 1000, "use_scale_shift_norm": True, "resblock_updown": True,
       "model_channels": 256, "num_res_blocks": 2, "out_channels": 6}
PUBLISHED = [
    (GuidedUNetConfig(**{**ADM, "model_channels": 192, "num_res_blocks": 3},
                      channel_mult=(1, 2, 3, 4), num_head_channels=64,
                      use_new_attention_order=True), 541, 295904454, 16),
    (GuidedUNetConfig(**ADM, image_size=128, channel_mult=(1, 1, 2, 3, 4), num_heads=4),
     493, 421529606, 15),
    (GuidedUNetConfig(**ADM, image_size=256, channel_mult=(1, 1, 2, 2, 4, 4),
                      num_head_channels=64), 567, 553838086, 18),
    (GuidedUNetConfig(**ADM, image_size=512, channel_mult=(0.5, 1, 1, 2, 2, 4, 4),
                      num_head_channels=64), 645, 558997638, 21),
    (GuidedUNetConfig(image_size=64, in_channels=3, out_channels=3, model_channels=192,
                      num_res_blocks=2, attention_resolutions=(8, 16, 32),
                      channel_mult=(1, 2, 3, 5), num_heads=1, use_scale_shift_norm=False,
                      resblock_updown=False, context_dim=512), 688, 400920579, 12),
]


@pytest.mark.parametrize(("cfg", "tensors", "params", "skips"), PUBLISHED)
def test_published_layouts_have_the_official_state_dicts(cfg, tensors, params, skips):
    assert state_counts(cfg) == (tensors, params)
    with torch.device("meta"):
        points = GuidedUNet(cfg).skip_points
    assert len(points) == skips
    assert [p.module_name for p in points[:2]] == ["output_blocks.0", "output_blocks.1"]
    assert points[0].level == len(cfg.channel_mult) - 1 and points[-1].level == 0


def test_skips_are_the_kept_input_outputs_in_last_in_first_out_order():
    net = GuidedUNet(TINY_ADM)
    # Kept input outputs: conv 32, res 32, down 32, res 64; popped bottom first.
    assert [(p.skip_channels, p.in_channels, p.resolution) for p in net.skip_points] == [
        (64, 128, 8), (32, 96, 8), (32, 96, 16), (32, 64, 16)]


def test_adm_schedules_in_sigma():
    # Linear: abar_t = prod(1 - beta); cosine without clipping telescopes to f(t+1) / f(0).
    betas = adm_linear_betas(1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    f = [math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(1001)]
    abar = torch.cumprod(1 - adm_cosine_betas(1000), 0)
    for t in (0, 10, 500, 900):
        assert abar[t].item() == pytest.approx(f[t + 1] / f[0], rel=1e-9)


def tiny_adm(tmp_path, noise_schedule="cosine"):
    path = tmp_path / "64x64_diffusion.pt"
    net = write_adm(path)
    return load_adm(path, ADM_FLAGS, noise_schedule), net, path


def inputs(batch: int = 3, channels: int = 1, size: int = 16):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(batch, channels, size, size, generator=g) * 2
    sigma = torch.tensor([0.2, 1.5, 20.0])[:batch]
    labels = F.one_hot(torch.arange(batch) % 10, 10).float()
    return x, sigma, labels


def reference_guided(net: GuidedUNet, x, t, y=None, context=None, rhos=None):
    """The UNet forward written out, each output block taking cat([h, rho_i skip_i])."""
    emb = net.time_embed(timestep_embedding_ref(t, net.cfg.model_channels))
    if y is not None:
        emb = emb + net.label_emb(y)
    kept, h = [], x
    for block in net.input_blocks:
        h = block(h, emb, context)
        kept.append(h)
    h = net.middle_block(h, emb, context)
    for i, block in enumerate(net.output_blocks):
        rho = 1.0 if rhos is None else rhos[i]
        h = block(torch.cat([h, rho * kept.pop()], dim=1), emb, context)
    return net.out(h)


def timestep_embedding_ref(t, dim):
    """ADM's sinusoidal embedding: cos then sin of t * 10000^(-k / (dim / 2))."""
    k = torch.arange(dim // 2, dtype=torch.float32)
    args = t[:, None].float() * torch.exp(-math.log(10000.0) * k / (dim // 2))[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def test_adm_denoiser_is_x_minus_sigma_times_the_eps_half(tmp_path):
    denoiser, net, _ = tiny_adm(tmp_path)
    x, _, labels = inputs()
    # sigma of timestep 500 from the closed form of the cosine schedule: t(sigma) = 500.
    f = [math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in (0, 501)]
    abar = f[1] / f[0]
    sigma = torch.full((3,), math.sqrt((1 - abar) / abar))
    with torch.no_grad():
        out = reference_guided(net, x / (sigma**2 + 1).sqrt()[:, None, None, None],
                               torch.full((3,), 500.0), labels.argmax(1))
        assert out.shape[1] == 2  # learned variance: [eps, variance values]
        expected = x - sigma[:, None, None, None] * out[:, :1]
        torch.testing.assert_close(denoiser(x, sigma, labels), expected, rtol=1e-4, atol=1e-4)
    assert denoiser.label_dim == 10 and denoiser.img_channels == 1
    abar_0 = math.cos((1 / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 / f[0]
    assert denoiser.sigma_min == pytest.approx(math.sqrt((1 - abar_0) / abar_0), rel=1e-6)


def hooked_against_reference(denoiser, net, x, sigma, labels, context_of=None):
    """(plain, identity-hooked, rho-hooked, reference) outputs of a GuidedUNet denoiser."""
    k = len(denoiser.skips)
    rhos = [0.4 + 0.1 * i for i in range(k)]
    with torch.no_grad():
        plain = denoiser(x, sigma, labels)
        with skip_tuning(denoiser, denoiser.skips, [1.0] * k):
            identity = denoiser(x, sigma, labels)
        with skip_tuning(denoiser, denoiser.skips, rhos):
            hooked = denoiser(x, sigma, labels)
        s = sigma[:, None, None, None]
        t = denoiser.schedule.timestep(sigma).float()
        y = labels.argmax(1)
        kwargs = {"context": context_of(y)} if context_of else {"y": y}
        out = reference_guided(net, x / (s**2 + 1).sqrt(), t, rhos=rhos, **kwargs)
        expected = x - s * out[:, : denoiser.img_channels]
    return plain, identity, hooked, expected


def test_adm_hooks_identity_bit_exact_and_rho_against_the_reference(tmp_path):
    denoiser, net, _ = tiny_adm(tmp_path)
    plain, identity, hooked, expected = hooked_against_reference(denoiser, net, *inputs())
    assert torch.equal(plain, identity)
    assert not torch.allclose(hooked, plain, atol=1e-3)
    torch.testing.assert_close(hooked, expected, rtol=1e-5, atol=1e-5)


# --- noise level to timestep -------------------------------------------------------------------


def written_out_betas(name: str, steps: int = 1000) -> list[float]:
    """The betas of each published schedule from its paper's formula, in float64."""
    if name == "linear":  # DDPM / ADM: linear from 1e-4 to 0.02 over 1000 steps
        return [1e-4 + (0.02 - 1e-4) * i / (steps - 1) for i in range(steps)]
    if name == "cosine":  # Nichol and Dhariwal: 1 - f(t + 1) / f(t), at most 0.999
        def f(t: int) -> float:
            return math.cos((t / steps + 0.008) / 1.008 * math.pi / 2) ** 2

        return [min(1 - f(i + 1) / f(i), 0.999) for i in range(steps)]
    assert name == "sqrt_linear"  # LDM: linear in sqrt(beta) from 0.0015 to 0.0195
    low, high = math.sqrt(0.0015), math.sqrt(0.0195)
    return [(low + (high - low) * i / (steps - 1)) ** 2 for i in range(steps)]


def levels_of(alphas_cumprod: list[float]) -> list[float]:
    """sigma_t = sqrt((1 - abar_t) / abar_t) of each training timestep, in float64."""
    return [math.sqrt((1 - a) / a) for a in alphas_cumprod]


def cumulative_products(betas: list[float]) -> list[float]:
    """abar_t = prod_{s <= t} (1 - beta_s), in float64."""
    out, product = [], 1.0
    for beta in betas:
        product *= 1 - beta
        out.append(product)
    return out


def timesteps_fed(denoiser, levels: list[float], labels=None) -> list[float]:
    """The timestep the network receives for each level, through the sampler's call path."""
    seen = timesteps_seen(denoiser, denoiser.net, levels, labels)
    assert all(t.dtype == torch.float32 and t.shape == (1,) for t in seen)
    return [float(t) for t in seen]


def ldm_without_schedule(tmp_path):
    """An LDM checkpoint without its schedule buffers: load_ldm builds sqrt_linear itself."""
    path = tmp_path / "model.ckpt"
    write_ldm(path)
    checkpoint = torch.load(path, weights_only=True)
    for key in ("betas", "alphas_cumprod"):
        del checkpoint["state_dict"][key]
    torch.save(checkpoint, path)
    return load_ldm(path, LDM_FLAGS, None, num_classes=10, null_class=10)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sqrt_linear"])
def test_each_training_level_reaches_the_network_as_its_integer_timestep(tmp_path, schedule):
    """Regression: the level was rounded to float32 first, so t came out 6.9999995 for 7."""
    if schedule == "sqrt_linear":
        denoiser = ldm_without_schedule(tmp_path)
    else:
        denoiser, _, _ = tiny_adm(tmp_path, schedule)
    levels = levels_of(cumulative_products(written_out_betas(schedule)))
    labels = F.one_hot(torch.tensor([3]), 10).float()
    fed = timesteps_fed(denoiser, levels, labels)
    wrong = [(t, got) for t, got in enumerate(fed) if got != t]
    assert not wrong, f"{len(wrong)} levels missed their timestep, e.g. {wrong[:3]}"
    # The trained range is the first and last of these levels.
    low, high = denoiser.sigma_range
    assert low == pytest.approx(levels[0], rel=1e-12)
    assert high == pytest.approx(levels[-1], rel=1e-12)


def test_the_levels_of_an_ldm_checkpoints_own_schedule_land_on_their_timesteps(tmp_path):
    """LDM keeps alphas_cumprod in float32: its levels are those of the stored values."""
    denoiser, _, _ = tiny_ldm(tmp_path)
    stored = torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]
    levels = levels_of(stored["alphas_cumprod"].tolist())
    fed = timesteps_fed(denoiser, levels, F.one_hot(torch.tensor([3]), 10).float())
    assert fed == [float(t) for t in range(1000)]


def test_adm_layout_mismatch_is_one_config_error(tmp_path):
    _, _, path = tiny_adm(tmp_path)
    with pytest.raises(ConfigError, match=r"model\.path=.*does not fit.*model\.channel_mult"):
        load_adm(path, {**ADM_FLAGS, "channel_mult": [1, 2, 2]})
    with pytest.raises(ConfigError, match="not a guided-diffusion UNet"):
        torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pt")
        load_adm(tmp_path / "other.pt", ADM_FLAGS)


def test_a_checkpoint_holding_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state": GuidedUNetConfig()}, path)  # an arbitrary class: needs unpickling
    with pytest.raises(ConfigError, match="besides tensors"):
        load_adm(path, ADM_FLAGS)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable torch checkpoint"):
        load_adm(tmp_path / "notes.txt", ADM_FLAGS)


def tiny_ldm(tmp_path, guidance_scale=1.0):
    path = tmp_path / "model.ckpt"
    unet, table = write_ldm(path)
    write_autoencoder(tmp_path / "vq")
    denoiser = load_ldm(path, LDM_FLAGS, tmp_path / "vq", num_classes=10, null_class=10,
                        guidance_scale=guidance_scale)
    return denoiser, unet, table


def test_ldm_reads_its_schedule_and_hooks_match_the_reference(tmp_path):
    denoiser, unet, table = tiny_ldm(tmp_path)
    # LDM's linear schedule: linear in sqrt(beta) from 0.0015 to 0.0195.
    betas = torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    assert denoiser.sigma_max == pytest.approx(math.sqrt((1 - abar[-1]) / abar[-1]), rel=1e-5)
    x, sigma, labels = inputs(channels=2, size=8)
    plain, identity, hooked, expected = hooked_against_reference(
        denoiser, unet, x, sigma, labels, context_of=lambda y: table[y][:, None])
    assert torch.equal(plain, identity)
    assert not torch.allclose(hooked, plain, atol=1e-3)
    torch.testing.assert_close(hooked, expected, rtol=1e-5, atol=1e-5)
    assert [p.module_name for p in denoiser.skips][:1] == ["net.diffusion_model.output_blocks.0"]


def test_ldm_guidance_mixes_the_null_class_pass(tmp_path):
    plain, _, _ = tiny_ldm(tmp_path)
    guided, _, _ = tiny_ldm(tmp_path, guidance_scale=1.5)
    x, sigma, labels = inputs(channels=2, size=8)
    with torch.no_grad():
        d_class = plain(x, sigma, labels)
        s = sigma[:, None, None, None]
        eps_null = plain.net(x / (s**2 + 1).sqrt(), plain.schedule.timestep(sigma).float(),
                             torch.full((3,), 10))
        d_null = x - s * eps_null
        expected = d_null + 1.5 * (d_class - d_null)
        # One batch of 6 against two of 3: float32 rounding of eps, times sigma up to 20.
        torch.testing.assert_close(guided(x, sigma, labels), expected, rtol=1e-5, atol=1e-4)


def test_ldm_prefers_the_ema_weights_it_holds(tmp_path):
    path = tmp_path / "model.ckpt"
    write_ldm(path)
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["state_dict"]
    # LitEma's buffer of input_blocks.0.0.weight: the dotted name without its dots.
    ema = state["model.diffusion_model.input_blocks.0.0.weight"] + 1.0
    state["model_ema.diffusion_modelinput_blocks00weight"] = ema
    torch.save(checkpoint, path)
    loaded = load_ldm(path, LDM_FLAGS, None)
    assert torch.equal(loaded.net.diffusion_model.input_blocks[0][0].weight, ema)
    raw = load_ldm(path, LDM_FLAGS, None, use_ema=False)
    weight = state["model.diffusion_model.input_blocks.0.0.weight"]
    assert torch.equal(raw.net.diffusion_model.input_blocks[0][0].weight, weight)


def test_ldm_decodes_through_the_vq_folder(tmp_path):
    denoiser, _, _ = tiny_ldm(tmp_path)
    z = torch.randn(2, 2, 8, 8)
    images = denoiser.decode(z)
    assert images.shape == (2, 1, 16, 16) and denoiser.image_channels == 1


def test_inspect_lists_the_skips_of_adm_and_ldm(tmp_path):
    path = tmp_path / "adm.pt"
    write_adm(path)
    result = run_cli("inspect", "model=adm", f"model.path={path}", *ADM_LAYOUT,
                     f"out_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert "adm: 4 skips" in result.stdout and "output_blocks.3" in result.stdout
    write_ldm(tmp_path / "ldm.ckpt")
    result = run_cli("inspect", "model=ldm", f"model.path={tmp_path / 'ldm.ckpt'}",
                     *LDM_LAYOUT, f"out_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert "ldm: 4 skips" in result.stdout and "diffusion_model.output_blocks.0" in result.stdout


def test_a_latent_model_without_its_autoencoder_is_one_line(tmp_path, tiny_weights):
    write_ldm(tmp_path / "ldm.ckpt")
    result = run_cli("sweep", "model=ldm", f"model.path={tmp_path / 'ldm.ckpt'}", *LDM_LAYOUT,
                     f"metric.weights={tiny_weights['classifier']}", "logger=none",
                     f"out_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "model.autoencoder" in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(("kind", "key", "value"), [
    ("adm", "channel_mult", 5), ("adm", "num_head_channels", 0),
    ("adm", "noise_schedule", "quad"), ("adm", "resblock_updown", "yes"),
    ("ldm", "guidance_scale", "x"), ("ldm", "latent_scale", 0.0), ("ldm", "null_class", -1),
    ("uvit", "num_heads", "abc"), ("uvit", "schedule", "ddim"),
])
def test_bad_model_settings_name_the_key(kind, key, value):
    from omegaconf import OmegaConf

    from skipsearch.models.settings import check_model_settings

    base = OmegaConf.load(CONF_DIR / "model" / f"{kind}.yaml")
    check_model_settings(OmegaConf.create({"model": base}))  # the shipped settings pass
    base[key] = value
    with pytest.raises(ConfigError, match=rf"^model\.{key}="):
        check_model_settings(OmegaConf.create({"model": base}))
