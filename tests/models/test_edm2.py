"""EDM2 checkpoints: pixel and latent snapshots, skips through mp_cat, the VAE decoder."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skipsearch.configuration.errors import ConfigError
from skipsearch.execution.generation import generate
from skipsearch.models.edm2 import find_edm2_skips, load_edm2_denoiser
from skipsearch.samplers import edm_sigmas
from skipsearch.tuning.schedule import linear_coefficients
from tests.conftest import run_cli
from tests.support.edm_format.writer import build_edm2, write_edm2_snapshot
from tests.support.hooks import plain_and_hooked
from tests.support.sd_pipeline import TINY_VAE

TINY = {"img_resolution": 16, "img_channels": 3, "label_dim": 10, "model_channels": 16,
        "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [8],
        "channels_per_head": 16, "dropout": 0.0}
# EDM2's published defaults for StabilityVAEEncoder (raw latent statistics, final std 0.5).
RAW_MEAN, RAW_STD, FINAL_STD = [5.81, 3.25, 0.12, -2.15], [4.17, 4.62, 3.71, 3.28], 0.5


def inputs(channels: int = 3, res: int = 16, batch: int = 3):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(batch, channels, res, res, generator=g)
    return x, torch.tensor([0.05, 1.2, 30.0])[:batch], torch.eye(10)[:batch]


@pytest.fixture(scope="module")
def pixel(tmp_path_factory):
    path = tmp_path_factory.mktemp("edm2") / "phema-0000512-0.100.pkl"
    return path, write_edm2_snapshot(path, **TINY)


def test_a_pixel_snapshot_loads_and_matches_the_original(pixel):
    path, original = pixel
    denoiser = load_edm2_denoiser(path, trust=True)
    assert "torch_utils" not in sys.modules and "training" not in sys.modules
    assert next(denoiser.parameters()).dtype == torch.float16  # stored as EDM2 stores it
    x, sigma, labels = inputs()
    assert torch.equal(denoiser(x, sigma, labels), original(x, sigma, labels))
    assert [(p.resolution, p.skip_channels, p.in_channels) for p in denoiser.skips] == [
        (8, 32, 64), (8, 16, 48), (16, 16, 48), (16, 16, 32)]
    assert denoiser.decode(x) is x and denoiser.image_channels == 3


def test_skip_count_at_the_published_imagenet_layouts():
    with torch.device("meta"):
        img64_s = build_edm2(img_resolution=64, img_channels=3, label_dim=1000,
                             model_channels=192, channel_mult=[1, 2, 3, 4], num_blocks=3,
                             attn_resolutions=[16, 8])
        img512_xs = build_edm2(img_resolution=64, img_channels=4, label_dim=1000,
                               model_channels=128, channel_mult=[1, 2, 3, 4], num_blocks=3,
                               attn_resolutions=[16, 8])
    for net in (img64_s, img512_xs):
        skips = find_edm2_skips(net)
        assert len(skips) == 16 and skips[0].resolution == 8 and skips[-1].resolution == 64
        assert skips[-1].skip_channels == net.unet.enc["64x64_conv"].out_channels


def mp_cat_reference(a, b, t):
    """EDM2's magnitude-preserving concatenation, Eq. 103 of Karras et al. 2024."""
    Na, Nb = a.shape[1], b.shape[1]
    C = math.sqrt((Na + Nb) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (C * (1 - t) / math.sqrt(Na)), b * (C * t / math.sqrt(Nb))], dim=1)


def test_rho_scales_the_skip_inside_mp_cat(pixel):
    """The hook equals mp_cat(x, rho_i * skip): the skip's weight times rho, x untouched."""
    path, _ = pixel
    denoiser = load_edm2_denoiser(path, trust=True)
    unet = denoiser.net.unet
    x, sigma, labels = inputs()
    rhos = linear_coefficients(0.9, 0.5, len(denoiser.skips))
    plain, hooked = plain_and_hooked(denoiser, x, sigma, labels, rhos)

    original = type(unet).forward

    def forward(x, noise_labels, class_labels):
        seen = {}
        first = unet.enc["8x8_down"]
        handle = first.register_forward_pre_hook(lambda m, a: seen.update(emb=a[1]))
        try:
            original(unet, x, noise_labels, class_labels)  # only to read the embedding
        finally:
            handle.remove()
        emb, skips, i = seen["emb"], [], 0
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        for name, block in unet.enc.items():
            x = block(x) if "conv" in name else block(x, emb)
            skips.append(x)
        for name, block in unet.dec.items():
            if "block" in name:
                x = mp_cat_reference(x, rhos[i] * skips.pop(), unet.concat_balance)
                i += 1
            x = block(x, emb)
        return unet.out_conv(x, gain=unet.out_gain)

    unet.forward = forward
    try:
        expected = denoiser(x, sigma, labels)
    finally:
        del unet.forward
    assert not torch.allclose(hooked, plain, atol=1e-4)
    torch.testing.assert_close(hooked, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def latent(tmp_path_factory):
    from diffusers import AutoencoderKL

    folder = tmp_path_factory.mktemp("edm2-latent")
    torch.manual_seed(0)
    AutoencoderKL(**TINY_VAE).save_pretrained(folder / "vae")
    path = folder / "edm2-img512-xs-tiny.pkl"
    write_edm2_snapshot(path, latent=True, **{**TINY, "img_channels": 4, "img_resolution": 8})
    return path, folder / "vae"


def test_a_latent_snapshot_decodes_through_the_local_vae(latent):
    from diffusers import AutoencoderKL

    path, vae_dir = latent
    denoiser = load_edm2_denoiser(path, trust=True, vae_path=str(vae_dir))
    assert denoiser.img_channels == 4 and denoiser.image_channels == 3
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    scale = np.float32(FINAL_STD) / np.float32(RAW_STD)
    bias = -np.float32(RAW_MEAN) * scale
    raw = (z - torch.from_numpy(bias).reshape(1, 4, 1, 1)) / torch.from_numpy(scale).reshape(
        1, 4, 1, 1)
    vae = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    with torch.no_grad():
        expected = vae.decode(raw).sample.clamp(0, 1) * 2 - 1
        images = denoiser.decode(z)
    torch.testing.assert_close(images, expected, rtol=1e-5, atol=1e-6)
    sampled = generate(denoiser, [0, 1], edm_sigmas(2), "heun")
    assert sampled.shape == (2, 3, 16, 16) and torch.isfinite(sampled).all()


def test_a_latent_snapshot_without_a_vae_names_the_key(latent):
    path, _ = latent
    with pytest.raises(ConfigError,
                       match=r"model\.vae=None: .*VAE latents \(stabilityai/sd-vae-ft-mse\)"):
        load_edm2_denoiser(path, trust=True)


def test_inspect_lists_the_skips_of_a_post_hoc_ema_snapshot(pixel, tmp_path):
    path, _ = pixel
    result = run_cli("inspect", "model=edm2", f"model.path={path}", "model.trust_pickle=true",
                     f"out_dir={tmp_path}/outputs")
    assert result.returncode == 0, result.stderr
    assert "edm2: 4 skips" in result.stdout and "net.unet.dec.16x16_block1" in result.stdout


def test_a_latent_snapshot_without_a_vae_is_one_line_on_the_cli(latent, tmp_path):
    path, _ = latent
    result = run_cli("inspect", "model=edm2", f"model.path={path}", "model.trust_pickle=true",
                     f"out_dir={tmp_path}/outputs")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.vae" in lines[0] and "AutoencoderKL" in lines[0]
    written = {f.relative_to(tmp_path).parts[:2] for f in tmp_path.rglob("*") if f.is_file()}
    assert written <= {("outputs", "logs")}  # the run's own log, nothing else


def test_a_tiny_sweep_runs_on_an_edm2_snapshot(pixel):
    """Sampling runs in the stored float16 weights on the CPU, output in range."""
    path, _ = pixel
    denoiser = load_edm2_denoiser(path, trust=True)
    images = generate(denoiser, [0, 1, 2], edm_sigmas(3), "heun")
    assert images.shape == (3, 3, 16, 16) and torch.isfinite(images).all()
    assert F.mse_loss(images, torch.zeros_like(images)) > 0


@pytest.fixture(scope="module")
def guiding(tmp_path_factory):
    """A second, differently seeded snapshot of the same data: the guiding network."""
    path = tmp_path_factory.mktemp("edm2-guide") / "guide.pkl"
    return path, write_edm2_snapshot(path, seed=1, **TINY)


def test_autoguidance_lerps_from_the_guiding_network_as_edm2_does(pixel, guiding):
    from skipsearch.models.denoiser import guided
    from skipsearch.tuning.skips import skip_tuning

    (path, net), (guide_path, gnet) = pixel, guiding
    denoiser = load_edm2_denoiser(path, trust=True, guide_path=str(guide_path),
                                  guidance_scale=1.8)
    x, sigma, labels = inputs()
    with torch.no_grad():
        d, ref = net(x, sigma, labels).float(), gnet(x, sigma, labels).float()
        assert denoiser.can_guide
        # EDM2's generate_images: ref_Dx.lerp(Dx, guidance), written out
        torch.testing.assert_close(denoiser(x, sigma, labels), ref + 1.8 * (d - ref),
                                   rtol=1e-5, atol=1e-5)
        with guided(denoiser, 1.0):
            assert torch.equal(denoiser(x, sigma, labels), d)  # w = 1: the model alone
        k = len(denoiser.skips)
        with skip_tuning(denoiser, denoiser.skips, [1.0] * k):
            assert torch.equal(denoiser(x, sigma, labels), ref.lerp(d, 1.8))
    assert all(p.module_name.startswith("net.unet.") for p in denoiser.skips)  # not the guide's
    assert not load_edm2_denoiser(path, trust=True).can_guide


def test_a_guiding_network_of_other_data_is_one_line(pixel, tmp_path):
    path, _ = pixel
    other = tmp_path / "other.pkl"
    write_edm2_snapshot(other, **{**TINY, "label_dim": 5})
    with pytest.raises(ConfigError) as err:
        load_edm2_denoiser(path, trust=True, guide_path=str(other), guidance_scale=2.0)
    assert err.value.key == "model.guide_path" and "label_dim is 5" in str(err.value)


def test_autoguidance_settings_are_checked_before_loading(pixel, tmp_path):
    path, _ = pixel
    common = ["inspect", "model=edm2", f"model.path={path}", "model.trust_pickle=true"]
    result = run_cli(*common, "model.guidance_scale=2")
    assert result.returncode == 2 and "model.guide_path" in result.stderr.splitlines()[-1]
    result = run_cli(*common, f"model.guide_path={tmp_path / 'missing.pkl'}")
    assert result.returncode == 2 and "model.guide_path" in result.stderr
    result = run_cli("sweep", "model=edm2", f"model.path={path}", "model.trust_pickle=true",
                     "search.guidance_scale={low: 1, high: 3}", f"out_dir={tmp_path / 'o'}")
    assert result.returncode == 2 and "needs a guiding network" in result.stderr
