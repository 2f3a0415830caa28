"""EDM checkpoints: persistence-format pickles, trust setting, skips by structure, hooks."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
import torch.nn.functional as F
import yaml

from skipsearch.errors import ConfigError
from skipsearch.models.edm import find_edm_skips, load_edm_denoiser
from skipsearch.schedule import linear_coefficients
from skipsearch.skips import skip_tuning

from .conftest import run_cli
from .edm_format.writer import build_network, write_snapshot

TINY = {"img_resolution": 16, "img_channels": 1, "model_channels": 16,
        "channel_mult": [1, 2, 2], "num_blocks": 1, "attn_resolutions": [8]}
CASES = {
    "edm-adm-cond": ("EDMPrecond", "DhariwalUNet", 10),
    "vp-ddpmpp-uncond": ("VPPrecond", "SongUNet", 0),
    "ve-ncsnpp-cond": ("VEPrecond", "SongUNet", 10),
    "iddpm-adm-uncond": ("iDDPMPrecond", "DhariwalUNet", 0),
}


def inputs(label_dim: int, batch: int = 3):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 1, 16, 16, generator=g)
    sigma = torch.tensor([0.1, 1.5, 20.0])[:batch]
    labels = F.one_hot(torch.arange(batch) % 10, 10).float() if label_dim else None
    return x, sigma, labels


@pytest.fixture(params=sorted(CASES))
def snapshot(request, tmp_path):
    precond, model_type, label_dim = CASES[request.param]
    path = tmp_path / "network-snapshot.pkl"
    net = write_snapshot(path, precond, label_dim=label_dim, model_type=model_type, **TINY)
    return path, net, label_dim


def test_loads_without_the_edm_repository_and_matches_the_original(snapshot):
    path, original, label_dim = snapshot
    denoiser = load_edm_denoiser(path, trust=True)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    x, sigma, labels = inputs(label_dim)
    assert torch.equal(denoiser(x, sigma, labels), original(x, sigma, labels))
    assert denoiser.label_dim == label_dim and len(denoiser.skips) == 3 * 2


def test_a_pickle_needs_the_trust_setting(snapshot):
    with pytest.raises(ConfigError, match=r"model\.trust_pickle"):
        load_edm_denoiser(snapshot[0], trust=False)


def test_foreign_globals_and_corrupt_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo owned'\ntR.")
    with pytest.raises(ConfigError, match=r"os\.system is not allowed"):
        load_edm_denoiser(evil, trust=True)
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ConfigError, match="not a readable EDM network pickle"):
        load_edm_denoiser(broken, trust=True)


def test_skip_counts_at_the_published_layouts():
    with torch.device("meta"):
        adm = build_network("EDMPrecond", img_resolution=64, img_channels=3, label_dim=1000,
                            model_type="DhariwalUNet", model_channels=192,
                            channel_mult=[1, 2, 3, 4], num_blocks=3,
                            attn_resolutions=[32, 16, 8])
        ddpmpp = build_network("VPPrecond", img_resolution=32, img_channels=3, label_dim=0,
                               model_type="SongUNet", model_channels=128,
                               channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16])
    adm_skips, ddpmpp_skips = find_edm_skips(adm), find_edm_skips(ddpmpp)
    assert len(adm_skips) == 16 and len(ddpmpp_skips) == 15
    assert [p.resolution for p in adm_skips[:4]] == [8, 8, 8, 8]
    assert adm_skips[-1].resolution == 64 and adm_skips[-1].skip_channels == 192


def reference_forward(unet, rhos):
    """EDM's enc/dec loop with concat([x, rho_i * skip]) written out, without hooks."""

    def forward(x, noise_labels, class_labels):
        emb = unet.embed(noise_labels, class_labels)
        skips = []
        for block in unet.enc.values():
            x = block(x, emb) if hasattr(block, "affine") else block(x)
            skips.append(x)
        i = 0
        for name, block in unet.dec.items():
            if "aux" in name:
                continue
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, rhos[i] * skips.pop()], dim=1)
                i += 1
            x = block(x, emb)
        return unet.out_conv(F.silu(unet.out_norm(x)))

    return forward


def test_identity_and_scaling_through_the_hooks(snapshot):
    path, _, label_dim = snapshot
    denoiser = load_edm_denoiser(path, trust=True)
    x, sigma, labels = inputs(label_dim)
    plain = denoiser(x, sigma, labels)
    k = len(denoiser.skips)
    with skip_tuning(denoiser, denoiser.skips, [1.0] * k):
        assert torch.equal(denoiser(x, sigma, labels), plain)
    rhos = linear_coefficients(1.0, 0.6, k)
    with skip_tuning(denoiser, denoiser.skips, rhos):
        hooked = denoiser(x, sigma, labels)
    unet = denoiser.net.model
    unet.forward = reference_forward(unet, rhos)
    try:
        expected = denoiser(x, sigma, labels)
    finally:
        del unet.forward
    assert not torch.allclose(hooked, plain, atol=1e-4)
    torch.testing.assert_close(hooked, expected, rtol=1e-5, atol=1e-6)


def test_pickle_round_trip_keeps_no_stand_ins(snapshot):
    path, _, _ = snapshot
    with open(path, "rb") as f:
        with pytest.raises((ModuleNotFoundError, pickle.UnpicklingError, AttributeError)):
            pickle.load(f)  # plain pickle cannot load it without EDM's code


def test_a_short_sweep_on_an_edm_checkpoint(tmp_path, tiny_weights):
    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, "EDMPrecond", label_dim=10, model_type="DhariwalUNet", **TINY)
    out = tmp_path / "out"
    result = run_cli("sweep", "model=edm", f"model.path={path}", "model.trust_pickle=true",
                     f"metric.weights={tiny_weights['classifier']}", f"out_dir={out}",
                     "metric.n_samples=12", "metric.final_samples=12",
                     "batch_size=6", "logger=none", "device=cpu",
                     "search.steps=[2]", "search.n_trials=2")
    assert result.returncode == 0, result.stderr
    exported = yaml.safe_load((out / "exports" / "edm-heun-linear" / "best.yaml").read_text())
    assert len(exported["schedule"]["coefficients"]) == 6
    assert exported["model"]["name"] == "edm"


def test_a_metric_that_cannot_read_the_images_is_refused(tmp_path, tiny_weights):
    path = tmp_path / "rgb.pkl"
    write_snapshot(path, "EDMPrecond", label_dim=0, model_type="SongUNet",
                   **{**TINY, "img_channels": 3})
    result = run_cli("sweep", "model=edm", f"model.path={path}", "model.trust_pickle=true",
                     f"metric.weights={tiny_weights['classifier']}",
                     f"out_dir={tmp_path / 'out'}", "logger=none", "device=cpu")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("skipsearch: error: metric.feature=")
    assert not (tmp_path / "out" / "studies.db").exists()
