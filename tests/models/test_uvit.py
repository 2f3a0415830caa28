"""U-ViT: state dict layout, token skips, schedules in sigma, guidance, latents, a sweep.

The latent model's ready sweep runs in test_family_sweeps.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from skipsearch.configuration.errors import ConfigError
from skipsearch.models.uvit import UViT, UViTConfig, load_uvit, uvit_config
from skipsearch.tuning.skips import skip_tuning
from tests.conftest import run_cli
from tests.support.guided_format import TINY_LATENT_UVIT, TINY_UVIT, write_autoencoder, write_uvit

COMMON = ["logger=none", "device=cpu", "metric.n_samples=12", "metric.final_samples=12",
          "batch_size=6", "search.steps=[2]", "search.samplers=[heun,unipc]",
          "search.n_trials=2"]


# Counts from U-ViT's own model code at the published configs: U-ViT-L/4 ImageNet-64 (287M)
# and U-ViT-H/2 ImageNet-256 latents (501M).
@pytest.mark.parametrize(("cfg", "tensors", "params", "skips"), [
    (UViTConfig(img_size=64, patch_size=4, embed_dim=1024, depth=20, num_heads=16,
                mlp_hidden=4096, num_classes=1000), 261, 286827652, 10),
    (UViTConfig(img_size=32, patch_size=2, in_chans=4, embed_dim=1152, depth=28, num_heads=16,
                mlp_hidden=4608, num_classes=1001, conv=False), 355, 500832016, 14),
])
def test_published_layouts_have_the_official_state_dicts(cfg, tensors, params, skips):
    with torch.device("meta"):
        net = UViT(cfg)
    state = net.state_dict()
    assert (len(state), sum(v.numel() for v in state.values())) == (tensors, params)
    assert len(net.skip_points) == skips
    assert uvit_config(state, cfg.num_heads, "x") == cfg  # everything else from the weights


def test_skips_are_the_trailing_token_features_of_each_skip_linear():
    points = UViT(TINY_UVIT).skip_points
    assert [(p.module_name, p.skip_channels, p.in_channels, p.feature_dim, p.level)
            for p in points] == [("out_blocks.0.skip_linear", 32, 64, -1, 1),
                                 ("out_blocks.1.skip_linear", 32, 64, -1, 0)]


def reference_uvit(net: UViT, x, t, y, rhos):
    """U-ViT's forward written out, each decoder block taking cat([x, rho_i skip_i], -1)."""
    dim = net.cfg.embed_dim
    k = torch.arange(dim // 2, dtype=torch.float32)
    args = t[:, None].float() * torch.exp(-math.log(10000.0) * k / (dim // 2))[None]
    time_token = torch.cat([torch.cos(args), torch.sin(args)], dim=1)[:, None]
    h = torch.cat([net.label_emb(y)[:, None], time_token, net.patch_embed(x)], dim=1)
    h = h + net.pos_embed
    kept = []
    for block in net.in_blocks:
        h = block(h)
        kept.append(h)
    h = net.mid_block(h)
    for i, block in enumerate(net.out_blocks):
        h = block.skip_linear(torch.cat([h, rhos[i] * kept.pop()], dim=-1))
        h = h + block.attn(block.norm1(h))
        h = h + block.mlp(block.norm2(h))
    tokens = net.decoder_pred(net.norm(h))[:, 2:]
    # (B, (h w), (p1 p2 C)) -> (B, C, (h p1), (w p2))
    b, g, p = x.shape[0], net.grid, net.cfg.patch_size
    image = tokens.reshape(b, g, g, p, p, -1).permute(0, 5, 1, 3, 2, 4).reshape(b, -1, g * p,
                                                                               g * p)
    return net.final_layer(image)


def inputs(batch=3, channels=1, size=16, classes=10):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(batch, channels, size, size, generator=g) * 2
    sigma = torch.tensor([0.2, 1.5, 20.0])[:batch]
    return x, sigma, F.one_hot(torch.arange(batch) % classes, classes).float()


def test_hooks_identity_bit_exact_and_rho_against_the_reference(tmp_path):
    path = tmp_path / "imagenet64_uvit_large.pth"
    net = write_uvit(path)
    denoiser = load_uvit(path, num_heads=4, num_classes=10)
    x, sigma, labels = inputs()
    rhos = [0.5, 0.8]
    with torch.no_grad():
        plain = denoiser(x, sigma, labels)
        with skip_tuning(denoiser, denoiser.skips, [1.0, 1.0]):
            identity = denoiser(x, sigma, labels)
        with skip_tuning(denoiser, denoiser.skips, rhos):
            hooked = denoiser(x, sigma, labels)
        s = sigma[:, None, None, None]
        t = denoiser.schedule.timestep(sigma).float()
        eps = reference_uvit(net, x / (s**2 + 1).sqrt(), t, labels.argmax(1), rhos)
    assert torch.equal(plain, identity)
    assert not torch.allclose(hooked, plain, atol=1e-3)
    torch.testing.assert_close(hooked, x - s * eps, rtol=1e-5, atol=1e-5)


def test_continuous_vp_schedule_in_sigma(tmp_path):
    write_uvit(tmp_path / "u.pth")
    schedule = load_uvit(tmp_path / "u.pth", num_heads=4).schedule
    # sigma(t)^2 = exp(0.1 t + 9.95 t^2) - 1 (VP SDE, beta 0.1..20); the network sees 999 t.
    for t in (1e-3, 0.25, 0.5, 1.0):
        sigma = math.sqrt(math.expm1(0.1 * t + 0.5 * 19.9 * t * t))
        level = torch.tensor([sigma], dtype=torch.float64)
        assert schedule.timestep(level).item() == pytest.approx(999 * t, rel=1e-9)
    assert schedule.sigma_max == pytest.approx(math.sqrt(math.expm1(10.05)))
    # Trained on t uniform in [0, 1]: no level below is out of range, above sigma(1) is.
    assert load_uvit(tmp_path / "u.pth", num_heads=4).sigma_range == pytest.approx(
        (0.0, math.sqrt(math.expm1(10.05))), rel=1e-12)


def tiny_latent(tmp_path, guidance_scale=1.0):
    path = tmp_path / "imagenet256_uvit_huge.pth"
    net = write_uvit(path, TINY_LATENT_UVIT)
    write_autoencoder(tmp_path / "vae", "AutoencoderKL")
    denoiser = load_uvit(path, 4, "discrete", tmp_path / "vae", guidance_scale=guidance_scale,
                         num_classes=10, null_class=10)
    return denoiser, net


def test_discrete_schedule_numbers_timesteps_from_one(tmp_path):
    denoiser, _ = tiny_latent(tmp_path)
    # Stable Diffusion's betas; U-ViT's timestep n has abar = prod_{k <= n} (1 - beta_k).
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    for n in (1, 2, 500, 1000):
        sigma = ((1 - abar[n - 1]) / abar[n - 1]).sqrt()
        assert denoiser.schedule.timestep(sigma[None]).item() == pytest.approx(n, abs=1e-6)


def test_latent_guidance_is_uvits_cfg_and_decodes_through_the_vae(tmp_path):
    plain, net = tiny_latent(tmp_path)
    guided, _ = tiny_latent(tmp_path, guidance_scale=1.4)
    x, sigma, labels = inputs(channels=2, size=8)
    with torch.no_grad():
        s = sigma[:, None, None, None]
        x_vp, t = x / (s**2 + 1).sqrt(), plain.schedule.timestep(sigma).float()
        cond = net(x_vp, t, labels.argmax(1))
        uncond = net(x_vp, t, torch.full((3,), 10))
        eps = cond + 0.4 * (cond - uncond)  # U-ViT's cfg with its scale 0.4
        torch.testing.assert_close(guided(x, sigma, labels), x - s * eps, rtol=1e-5, atol=1e-4)
        images = plain.decode(torch.randn(2, 2, 8, 8))
    assert images.shape == (2, 1, 16, 16) and plain.image_channels == 1


def test_guidance_needs_a_null_class(tmp_path):
    write_uvit(tmp_path / "u.pth", TINY_LATENT_UVIT)
    with pytest.raises(ConfigError, match=r"model\.null_class"):
        load_uvit(tmp_path / "u.pth", 4, "discrete", guidance_scale=1.4, null_class=None)
    with pytest.raises(ConfigError, match=r"model\.num_heads"):
        load_uvit(tmp_path / "u.pth", 5)


def test_inspect_and_a_sweep_on_a_pixel_uvit(tmp_path, tiny_weights):
    write_uvit(tmp_path / "pixel.pth")
    result = run_cli("inspect", "model=uvit", f"model.path={tmp_path / 'pixel.pth'}",
                     "model.num_heads=4", f"out_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert "uvit: 2 skips" in result.stdout and "out_blocks.1.skip_linear" in result.stdout
    metric = f"metric.weights={tiny_weights['classifier']}"
    pixel = run_cli("sweep", "model=uvit", f"model.path={tmp_path / 'pixel.pth'}",
                    "model.num_heads=4", "model.num_classes=10", metric,
                    f"out_dir={tmp_path / 'pixel'}", *COMMON)
    assert pixel.returncode == 0, pixel.stderr
    best = yaml.safe_load((tmp_path / "pixel" / "exports" / "uvit-heun-linear"
                           / "best.yaml").read_text())
    assert len(best["schedule"]["coefficients"]) == 2


def test_token_skips_are_scaled_out_of_place_when_autograd_records(tmp_path):
    path = tmp_path / "u.pth"
    net = write_uvit(path)
    denoiser = load_uvit(path, num_heads=4, num_classes=10).requires_grad_(True)
    x, sigma, labels = inputs()
    x = x.requires_grad_(True)
    rhos = [0.5, 0.8]
    with skip_tuning(denoiser, denoiser.skips, rhos):
        hooked = denoiser(x, sigma, labels)
    hooked.square().sum().backward()
    s = sigma[:, None, None, None]
    with torch.no_grad():
        t = denoiser.schedule.timestep(sigma).float()
        eps = reference_uvit(net, x / (s**2 + 1).sqrt(), t, labels.argmax(1), rhos)
    torch.testing.assert_close(hooked.detach(), x.detach() - s * eps, rtol=1e-5, atol=1e-5)
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert denoiser.net.out_blocks[0].skip_linear.weight.grad is not None
