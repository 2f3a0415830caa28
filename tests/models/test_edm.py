"""EDM checkpoints: every published family, exact trust, preconditioning math, skips, hooks."""

from __future__ import annotations

import math
import pickle
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from scipy.optimize import brentq

from skipsearch.configuration.errors import ConfigError
from skipsearch.models.edm import find_edm_skips, load_edm_denoiser
from skipsearch.tuning.schedule import linear_coefficients
from tests.conftest import run_cli
from tests.support.edm_format.writer import build_network, write_snapshot
from tests.support.hooks import plain_and_hooked

TINY = {"img_resolution": 16, "img_channels": 1, "model_channels": 32,
        "channel_mult": [1, 2, 2], "num_blocks": 1, "attn_resolutions": [8], "dropout": 0.13,
        "use_fp16": False}
# The architectures as EDM's train.py configures them (--arch=ddpmpp|ncsnpp|adm).
ARCH = {
    "ddpmpp": {"model_type": "SongUNet", "embedding_type": "positional",
               "encoder_type": "standard", "decoder_type": "standard",
               "channel_mult_noise": 1, "resample_filter": [1, 1]},
    "ncsnpp": {"model_type": "SongUNet", "embedding_type": "fourier",
               "encoder_type": "residual", "decoder_type": "standard",
               "channel_mult_noise": 2, "resample_filter": [1, 3, 3, 1]},
    "adm": {"model_type": "DhariwalUNet"},
}
# Every combination EDM publishes: DDPM++/NCSN++ under EDM, VP, VE; ADM under EDM, iDDPM.
CASES = {
    "edm-adm": ("EDMPrecond", "adm", 10), "edm-ddpmpp": ("EDMPrecond", "ddpmpp", 0),
    "edm-ncsnpp": ("EDMPrecond", "ncsnpp", 10), "vp-ddpmpp": ("VPPrecond", "ddpmpp", 10),
    "vp-ncsnpp": ("VPPrecond", "ncsnpp", 0), "ve-ddpmpp": ("VEPrecond", "ddpmpp", 0),
    "ve-ncsnpp": ("VEPrecond", "ncsnpp", 10), "iddpm-adm": ("iDDPMPrecond", "adm", 0),
}
# What EDM's UNets keep besides nn.Module's own state (training/networks.py).
UNET_ATTRIBUTES = {
    "SongUNet": {"label_dropout", "map_noise", "map_label", "map_augment", "map_layer0",
                 "map_layer1", "enc", "dec", "_init_args", "_init_kwargs"},
    "DhariwalUNet": {"label_dropout", "map_noise", "map_augment", "map_layer0",
                     "map_layer1", "map_label", "enc", "dec", "out_norm", "out_conv",
                     "_init_args", "_init_kwargs"},
}


def inputs(label_dim: int, batch: int = 3):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 1, 16, 16, generator=g)
    sigma = torch.tensor([0.1, 1.5, 20.0])[:batch]
    labels = F.one_hot(torch.arange(batch) % 10, 10).float() if label_dim else None
    return x, sigma, labels


@pytest.fixture(scope="module", params=sorted(CASES))
def snapshot(request, tmp_path_factory):
    precond, arch, label_dim = CASES[request.param]
    path = tmp_path_factory.mktemp(request.param) / "network-snapshot.pkl"
    net = write_snapshot(path, precond, label_dim=label_dim, **ARCH[arch], **TINY)
    return path, net, label_dim


def test_loads_without_the_edm_repository_and_matches_the_original(snapshot):
    path, original, label_dim = snapshot
    denoiser = load_edm_denoiser(path, trust=True)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    x, sigma, labels = inputs(label_dim)
    assert torch.equal(denoiser(x, sigma, labels), original(x, sigma, labels))
    assert denoiser.label_dim == label_dim and len(denoiser.skips) == 3 * 2


def test_the_stand_ins_keep_what_edm_keeps_and_nothing_more(snapshot):
    """Regression: EDM's UNets store no img_resolution; the loader must not need it."""
    _, original, _ = snapshot
    unet = original.model
    own = (set(vars(unet)) - set(vars(torch.nn.Module()))) | set(unet._modules)
    own |= set(unet._parameters) | set(unet._buffers)
    assert own == UNET_ATTRIBUTES[type(unet).__name__]
    assert not hasattr(unet, "img_resolution")
    assert unet.init_kwargs["img_resolution"] == 16  # kept only as a constructor argument
    assert type(unet).__module__ == type(original).__module__ == "training.networks"


def test_the_snapshot_layout_and_inert_loss(snapshot):
    """EDM's snapshot dict; its loss object is kept as a record, its code never run."""
    from skipsearch.models.persistence import Unbuilt, read_nvlabs_pickle

    path, original, _ = snapshot
    data = read_nvlabs_pickle(path, True, "an NVlabs EDM")
    assert list(data) == ["ema", "loss_fn", "augment_pipe", "dataset_kwargs"]
    if type(original).__name__ != "iDDPMPrecond":  # iDDPM baselines were not trained by EDM
        assert isinstance(data["loss_fn"], Unbuilt)
        assert data["loss_fn"].class_name == type(original).__name__.replace("Precond", "Loss")


def reference_coefficients(net, sigma: np.ndarray):
    """c_skip, c_out, c_in, c_noise in float64, from the papers (EDM Table 1, iDDPM, VP SDE)."""
    kind = type(net).__name__
    one = np.ones_like(sigma)
    if kind == "EDMPrecond":
        sd = net.sigma_data
        return (sd**2 / (sigma**2 + sd**2), sigma * sd / np.sqrt(sigma**2 + sd**2),
                1 / np.sqrt(sigma**2 + sd**2), np.log(sigma) / 4)
    if kind == "VEPrecond":
        return one, sigma, one, np.log(sigma / 2)
    if kind == "VPPrecond":
        # t with sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1), found numerically.
        def sigma_of(t):
            return math.sqrt(math.exp(0.5 * net.beta_d * t**2 + net.beta_min * t) - 1)

        t = np.array([brentq(lambda t, s=s: sigma_of(t) - s, 1e-12, 2.0) for s in sigma])
        return one, -sigma, 1 / np.sqrt(sigma**2 + 1), (net.M - 1) * t
    assert kind == "iDDPMPrecond"
    M = net.M
    u = iddpm_levels(M, net.C_1, net.C_2)
    index = np.abs(sigma[:, None] - u[None, :]).argmin(axis=1)
    return one, -sigma, 1 / np.sqrt(sigma**2 + 1), (M - 1 - index).astype(np.float64)


def iddpm_levels(M: int = 1000, C_1: float = 0.001, C_2: float = 0.008) -> np.ndarray:
    """iDDPM's levels u_0 > ... > u_M = 0 in float64 (EDM, Table 1 and Appendix C).

    u_{j-1} = sqrt((u_j^2 + 1) / max(abar(j-1) / abar(j), C_1) - 1) with
    abar(j) = sin(pi/2 j / (M (C_2 + 1)))^2.
    """
    def abar(j: int) -> float:
        return math.sin(math.pi / 2 * j / (M * (C_2 + 1))) ** 2

    u = np.zeros(M + 1)
    for j in range(M, 0, -1):
        u[j - 1] = math.sqrt((u[j] ** 2 + 1) / max(abar(j - 1) / abar(j), C_1) - 1)
    return u


def test_the_preconditioning_is_edms(snapshot):
    """D = c_skip x + c_out F(c_in x; c_noise) with each family's own coefficients."""
    path, _, label_dim = snapshot
    denoiser = load_edm_denoiser(path, trust=True)
    x, sigma, labels = inputs(label_dim)
    seen = {}

    def record(module, args, kwargs, output):
        seen.update(x_in=args[0], c_noise=args[1], F=output)

    handle = denoiser.net.model.register_forward_hook(record, with_kwargs=True)
    try:
        D = denoiser(x, sigma, labels).double()
    finally:
        handle.remove()
    c_skip, c_out, c_in, c_noise = (torch.as_tensor(c).reshape(-1, 1, 1, 1) for c in
                                    reference_coefficients(denoiser.net, sigma.double().numpy()))
    x64 = x.double()
    torch.testing.assert_close(seen["x_in"].double(), c_in * x64, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(seen["c_noise"].double(), c_noise.flatten(), rtol=1e-6, atol=1e-5)
    F_x = seen["F"][:, :1].double()  # iDDPM's model also predicts variances: the first half
    torch.testing.assert_close(D, c_skip * x64 + c_out * F_x, rtol=1e-6, atol=1e-6)


def vp_sigma(t: float, beta_d: float = 19.9, beta_min: float = 0.1) -> float:
    """The VP SDE's sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) (EDM, Table 1)."""
    return math.sqrt(math.expm1(0.5 * beta_d * t**2 + beta_min * t))


def test_the_trained_range_is_the_wrappers(snapshot):
    """The levels each family was trained on, as EDM's generate.py narrows to them."""
    path, original, _ = snapshot
    sigma_range = load_edm_denoiser(path, trust=True).sigma_range
    kind = type(original).__name__
    if kind == "EDMPrecond":  # sigma_min 0, sigma_max inf: any level
        assert sigma_range is None
    elif kind == "VEPrecond":  # EDM's defaults
        assert sigma_range == (0.02, 100.0)
    elif kind == "VPPrecond":  # sigma(epsilon_t = 1e-5) and sigma(1)
        # EDM evaluates sigma(1e-5) in float32, where exp(1e-6) - 1 loses 2% of its digits.
        assert sigma_range[0] == pytest.approx(vp_sigma(1e-5), rel=0.03)
        assert sigma_range[1] == pytest.approx(vp_sigma(1.0), rel=1e-6)
    else:  # u_{M-1} and u_0 of iDDPM's table, which EDM computes in float32
        u = iddpm_levels()
        # u_{M-1}^2 = abar(M) / abar(M-1) - 1 = 4e-5 keeps 3 of float32's 7 digits.
        assert sigma_range == pytest.approx((u[-2], u[0]), rel=1e-3)


def edm_settings(path, tmp_path, tiny_weights, *overrides):
    """The checked settings of ``sample`` on the EDM snapshot at ``path`` (CPU, no FID)."""
    from skipsearch.cli import compose_config
    from skipsearch.configuration.build import build

    cfg = compose_config(["model=edm", f"model.path={path}", "model.trust_pickle=true",
                          f"metric.weights={tiny_weights['classifier']}", "device=cpu",
                          f"out_dir={tmp_path / 'out'}", "logger=none", "sample.score=false",
                          *overrides])
    return build(cfg, "sample")


@pytest.mark.parametrize("sampler", ["heun", "euler"])
def test_an_iddpm_network_is_sampled_inside_its_trained_range(tmp_path, tiny_weights, caplog,
                                                               sampler):
    """Regression: sigma_min=0.002 lies below iDDPM's u_{M-1}, so its network got t = -1."""
    from skipsearch.execution.evaluate import evaluate
    from skipsearch.execution.runtime import build_model, fit_settings
    from skipsearch.tuning.schedule import SkipSchedule

    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, "iDDPMPrecond", label_dim=0, **ARCH["adm"], **TINY)
    settings = edm_settings(path, tmp_path, tiny_weights, f"sampler={sampler}",
                            "sampler.steps=8")
    assert (settings.sampler.sigma_min, settings.sampler.sigma_max) == (0.002, 80.0)
    model = build_model(settings, "cpu")
    with caplog.at_level("INFO", logger="skipsearch"):
        fitted = fit_settings(settings, model).sampler
    u, M = iddpm_levels(), 1000
    # u_{M-1} = 0.006425 in float64; EDM's float32 table holds 0.006422 (see above).
    assert fitted.sigma_min == pytest.approx(u[M - 1], rel=1e-3)
    assert fitted.sigma_min == float(model.denoiser.net.u[M - 1])  # the table's own level
    assert fitted.sigma_max == 80.0  # u_0 = 20291: EDM's 80 stays
    assert [r.getMessage() for r in caplog.records] == [
        f"sampler.sigma_min 0.002 -> {fitted.sigma_min:.6g} (the network's trained range)"]
    fed = []
    unet = model.denoiser.net.model
    handle = unet.register_forward_pre_hook(lambda module, args: fed.append(args[1]))
    try:
        evaluate(model, SkipSchedule.identity(len(model.denoiser.skips)), fitted, range(2), 2,
                 "cpu", keep_images=True)
    finally:
        handle.remove()
    timesteps = torch.cat(fed).tolist()
    assert len(fed) == fitted.nfe
    assert all(0 <= t <= M - 1 and t == int(t) for t in timesteps), timesteps
    assert min(timesteps) == 0  # the last level is u_{M-1}, the network's timestep 0


def test_listed_levels_outside_the_trained_range_are_one_line(tmp_path, tiny_weights):
    from skipsearch.execution.runtime import build_model, fit_settings

    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, "VEPrecond", label_dim=0, **ARCH["ddpmpp"], **TINY)
    settings = edm_settings(path, tmp_path, tiny_weights, "sampler.discretization=list",
                            "sampler.sigmas=[80,10,1,0.1,0.002]")
    model = build_model(settings, "cpu")
    with pytest.raises(ConfigError) as err:
        fit_settings(settings, model)
    message = str(err.value)
    assert message.startswith("sampler.sigmas=[80.0, 10.0, 1.0, 0.1, 0.002]: 0.002 is outside")
    assert "[0.02, 100.0]" in message and "\n" not in message
    inside = edm_settings(path, tmp_path, tiny_weights, "sampler.discretization=list",
                          "sampler.sigmas=[80,10,1,0.1,0.02]")
    assert fit_settings(inside, model).sampler == inside.sampler  # listed levels never move
    # An EDM range entirely below the network's leaves nothing to sample: one line too.
    below = edm_settings(path, tmp_path, tiny_weights, "sampler.sigma_max=0.01")
    with pytest.raises(ConfigError, match=r"^sampler\.sigma_max=0\.01: leaves no noise level"):
        fit_settings(below, model)


def test_an_unlimited_network_keeps_the_sampler_as_given(tmp_path, tiny_weights, caplog):
    from skipsearch.execution.runtime import build_model, fit_settings

    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, "EDMPrecond", label_dim=0, **ARCH["ddpmpp"], **TINY)
    settings = edm_settings(path, tmp_path, tiny_weights, "sampler.sigma_min=0.0001",
                            "sampler.sigma_max=500")
    with caplog.at_level("INFO", logger="skipsearch"):
        fitted = fit_settings(settings, build_model(settings, "cpu"))
    assert fitted.sampler == settings.sampler and not caplog.records


def test_sample_narrows_the_sampler_and_says_so(tmp_path, tiny_weights):
    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, "VEPrecond", label_dim=0, **ARCH["ddpmpp"], **TINY)
    result = run_cli("sample", "model=edm", f"model.path={path}", "model.trust_pickle=true",
                     f"metric.weights={tiny_weights['classifier']}", "device=cpu",
                     f"out_dir={tmp_path / 'out'}", "logger=none", "sample.score=false",
                     "sample.n=2", "sample.grid=2", "sampler.steps=3")
    assert result.returncode == 0, result.stderr
    assert "sampler.sigma_min 0.002 -> 0.02 (the network's trained range)" in result.stdout


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
    with pytest.raises(ConfigError, match="expected an NVlabs EDM network pickle"):
        load_edm_denoiser(broken, trust=True)


def _short_unicode(text: str) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text.encode()


def test_a_dotted_name_never_walks_through_modules(tmp_path):
    """Protocol 4 names module 'torch', name 'os.system'; trust must not reach os.system."""
    marker = tmp_path / "owned"
    payload = (b"\x80\x04" + _short_unicode("torch") + _short_unicode("os.system") + b"\x93"
               + _short_unicode(f"touch {marker}") + b"\x85R.")
    evil = tmp_path / "dotted.pkl"
    evil.write_bytes(payload)
    with pytest.raises(ConfigError, match=r"torch\.os\.system is not allowed"):
        load_edm_denoiser(evil, trust=True)
    assert not marker.exists()


class _Touch:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)


def test_tensor_storages_are_read_without_running_code(tmp_path):
    """A storage record is torch.save bytes; they are loaded weights-only, never executed."""
    import io

    marker = tmp_path / "owned"
    inner = io.BytesIO()
    torch.save(_Touch(marker), inner)
    data = inner.getvalue()
    payload = (b"\x80\x04" + _short_unicode("torch.storage") + _short_unicode("_load_from_bytes")
               + b"\x93" + b"B" + len(data).to_bytes(4, "little") + data + b"\x85R.")
    evil = tmp_path / "storage.pkl"
    evil.write_bytes(payload)
    with pytest.raises(ConfigError, match="expected an NVlabs EDM network pickle"):
        load_edm_denoiser(evil, trust=True)
    assert not marker.exists()


def test_numpy_scalars_and_arrays_of_either_numpy_generation_load():
    """Snapshots written under numpy 1 name numpy.core.multiarray; numpy 2 numpy._core."""
    import io

    from skipsearch.models.persistence import NVlabsUnpickler

    values = {"skip_scale": np.sqrt(0.5), "scale": np.float32([0.5, 0.25])}
    new = pickle.dumps(values, protocol=2)
    old = new.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    for data in (new, old):
        loaded = NVlabsUnpickler(io.BytesIO(data)).load()
        assert loaded["skip_scale"] == values["skip_scale"]
        assert np.array_equal(loaded["scale"], values["scale"])


def test_skip_counts_at_the_published_layouts():
    with torch.device("meta"):
        adm = build_network("EDMPrecond", img_resolution=64, img_channels=3, label_dim=1000,
                            model_type="DhariwalUNet", model_channels=192,
                            channel_mult=[1, 2, 3, 4], num_blocks=3,
                            attn_resolutions=[32, 16, 8])
        ddpmpp = build_network("EDMPrecond", img_resolution=32, img_channels=3, label_dim=0,
                               **ARCH["ddpmpp"], model_channels=128, channel_mult=[2, 2, 2],
                               num_blocks=4, attn_resolutions=[16])
        ncsnpp = build_network("EDMPrecond", img_resolution=32, img_channels=3, label_dim=0,
                               **ARCH["ncsnpp"], model_channels=128, channel_mult=[2, 2, 2],
                               num_blocks=4, attn_resolutions=[16])
    adm_skips, ddpmpp_skips = find_edm_skips(adm), find_edm_skips(ddpmpp)
    assert len(adm_skips) == 16 and len(ddpmpp_skips) == 15 == len(find_edm_skips(ncsnpp))
    assert [p.resolution for p in adm_skips[:4]] == [8, 8, 8, 8]
    assert adm_skips[-1].resolution == 64 and adm_skips[-1].skip_channels == 192
    assert [p.level for p in ddpmpp_skips[:5]] == [2] * 5 and ddpmpp_skips[-1].level == 0


def scaled_unet_forward(unet, rhos):
    """EDM's enc/dec loops (both UNets) with concat([x, rho_i * skip]) written out."""
    original = type(unet).forward
    song = type(unet).__name__ == "SongUNet"

    def forward(x, noise_labels, class_labels, augment_labels=None):
        seen = {}
        first = next(b for b in unet.enc.values() if hasattr(b, "affine"))
        handle = first.register_forward_pre_hook(lambda m, a: seen.update(emb=a[1]))
        try:
            original(unet, x, noise_labels, class_labels)  # only to read the embedding
        finally:
            handle.remove()
        emb, skips, aux = seen["emb"], [], x
        for name, block in unet.enc.items():
            if "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / np.sqrt(2)
            else:
                x = block(x, emb) if hasattr(block, "affine") else block(x)
                skips.append(x)
        i, out = 0, None
        for name, block in unet.dec.items():
            if "aux_norm" in name:
                out = block(x)
            elif "aux_conv" in name:
                out = block(F.silu(out))
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, rhos[i] * skips.pop()], dim=1)
                    i += 1
                x = block(x, emb)
        return out if song else unet.out_conv(F.silu(unet.out_norm(x)))

    return forward


def test_identity_and_scaling_through_the_hooks(snapshot):
    path, _, label_dim = snapshot
    denoiser = load_edm_denoiser(path, trust=True)
    x, sigma, labels = inputs(label_dim)
    rhos = linear_coefficients(1.0, 0.6, len(denoiser.skips))
    plain, hooked = plain_and_hooked(denoiser, x, sigma, labels, rhos)
    unet = denoiser.net.model
    unet.forward = scaled_unet_forward(unet, rhos)
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
    write_snapshot(path, "EDMPrecond", label_dim=10, **ARCH["adm"], **TINY)
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


def test_a_sweep_on_iddpm_records_and_exports_the_narrowed_range(tmp_path, tiny_weights):
    """The sweep samples, records and exports the network's range; sample reproduces it."""
    path = tmp_path / "network-snapshot.pkl"
    write_snapshot(path, "iDDPMPrecond", label_dim=0, **ARCH["adm"], **TINY)
    out = tmp_path / "out"
    common = ["model=edm", f"model.path={path}", "model.trust_pickle=true",
              f"metric.weights={tiny_weights['classifier']}", f"out_dir={out}",
              "batch_size=6", "device=cpu"]
    result = run_cli("sweep", *common, "metric.n_samples=12", "metric.final_samples=12",
                     "logger=none", "search.steps=[2]", "search.n_trials=2")
    assert result.returncode == 0, result.stderr
    best = out / "exports" / "edm-heun-linear" / "best.yaml"
    exported = yaml.safe_load(best.read_text())
    assert exported["sampler"]["sigma_min"] == pytest.approx(iddpm_levels()[999], rel=1e-3)
    sample = run_cli("sample", *common, f"schedule={best}")
    assert sample.returncode == 0, sample.stderr
    fid, was = map(float, re.search(r"FID (\S+) \(exported: (\S+)\)", sample.stdout).groups())
    assert fid == pytest.approx(was, rel=1e-6)


def test_a_metric_that_cannot_read_the_images_is_refused(tmp_path, tiny_weights):
    path = tmp_path / "rgb.pkl"
    write_snapshot(path, "EDMPrecond", label_dim=0, **ARCH["ddpmpp"],
                   **{**TINY, "img_channels": 3})
    result = run_cli("sweep", "model=edm", f"model.path={path}", "model.trust_pickle=true",
                     f"metric.weights={tiny_weights['classifier']}",
                     f"out_dir={tmp_path / 'out'}", "logger=none", "device=cpu")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("skipsearch: error: metric.name=")
    assert not (tmp_path / "out" / "studies.db").exists()
