"""InceptionV3 FID from a local file, published statistics, RGB and text-to-image sweeps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("torch_fidelity")

import torch
import yaml

from skipsearch.configuration.errors import ConfigError
from skipsearch.metrics.fid import FIDScorer
from skipsearch.metrics.inception import inception_features
from skipsearch.metrics.reference import cached_reference
from tests.conftest import run_cli
from tests.support.edm_format.writer import write_snapshot
from tests.support.feature_files import write_random_inception


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    return write_random_inception(tmp_path_factory.mktemp("inception"))


@pytest.fixture(scope="module")
def reference_npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("reference") / "images.npz"
    np.savez(path, images=rng.integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8))
    return path


class NotWeights:
    """Anything but tensors: unpickling it would need this class."""


def test_missing_or_unsafe_weights_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="torch-fidelity/releases"):
        inception_features(tmp_path / "nope.pth")
    unsafe = tmp_path / "unsafe.pth"
    unsafe.write_bytes(pickle.dumps({"fc.weight": NotWeights()}, protocol=2))
    with pytest.raises(ConfigError, match="not a plain InceptionV3 state dict"):
        inception_features(unsafe)


def test_published_statistics_give_the_same_fid_as_the_images(inception_file, reference_npz,
                                                              tmp_path):
    extractor = inception_features(inception_file)
    images = torch.from_numpy(np.load(reference_npz)["images"]).permute(0, 3, 1, 2)
    features = extractor(images).numpy()
    stats = tmp_path / "stats.npz"
    np.savez(stats, mu=features.mean(0), sigma=np.cov(features, rowvar=False))
    fake = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fids = []
    for reference in (str(reference_npz), str(stats)):
        scorer = FIDScorer(extractor, cached_reference(reference, extractor, tmp_path / "c"))
        scorer.update(fake)
        fids.append(scorer.compute())
    assert features.shape == (12, 2048)
    assert fids[0] > 0 and fids[1] == pytest.approx(fids[0], rel=1e-6)


def test_an_rgb_edm_sweep_on_inception_fid(inception_file, reference_npz, tmp_path):
    path = tmp_path / "rgb.pkl"
    write_snapshot(path, "EDMPrecond", img_resolution=16, img_channels=3, label_dim=0,
                   model_type="SongUNet", model_channels=16, channel_mult=[1, 2],
                   num_blocks=1, attn_resolutions=[])
    out = tmp_path / "out"
    result = run_cli("sweep", "model=edm", f"model.path={path}", "model.trust_pickle=true",
                     "metric=fid", f"metric.inception_weights={inception_file}",
                     f"metric.reference={reference_npz}", "metric.n_samples=6",
                     "metric.final_samples=6", "search.confirm_blocks=3", "batch_size=6",
                     f"out_dir={out}", "logger=none", "device=cpu", "search.steps=[2]",
                     "search.n_trials=2")
    assert result.returncode == 0, result.stderr
    record = yaml.safe_load((out / "exports" / "edm-heun-linear" / "best.yaml").read_text())
    assert record["score"]["feature_extractor"] == "inception-v3-compat"


def test_a_text_to_image_sweep_takes_a_prompts_file(inception_file, reference_npz, tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from tests.support.sd_pipeline import write_tiny_sd_pipeline

    folder = write_tiny_sd_pipeline(tmp_path / "pipeline")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cat\na boat\n")
    out = tmp_path / "out"
    result = run_cli("sweep", "model=stable_diffusion", f"model.path={folder}",
                     f"model.prompts={prompts}", "metric=fid",
                     f"metric.inception_weights={inception_file}",
                     f"metric.reference={reference_npz}",
                     "metric.n_samples=4", "metric.final_samples=4", "search.confirm_blocks=2",
                     "batch_size=4", f"out_dir={out}", "logger=none",
                     "device=cpu", "search.steps=[2]", "search.n_trials=2",
                     "sampler.sigma_min=0.03", "sampler.sigma_max=14.6")
    assert result.returncode == 0, result.stderr
    assert (out / "exports" / "stable_diffusion-heun-linear" / "best.yaml").is_file()


def test_the_ready_sweeps_run_with_paths_as_overrides(inception_file, reference_npz, tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from tests.support.sd_pipeline import write_tiny_sd_pipeline

    edm = tmp_path / "edm.pkl"
    write_snapshot(edm, "EDMPrecond", img_resolution=16, img_channels=3, label_dim=0,
                   model_type="DhariwalUNet", model_channels=16, channel_mult=[1, 2],
                   num_blocks=1, attn_resolutions=[])
    pipeline = write_tiny_sd_pipeline(tmp_path / "pipeline")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cat\n")
    metric = [f"metric.inception_weights={inception_file}", f"metric.reference={reference_npz}",
              "metric.n_samples=4", "metric.final_samples=4", "search.confirm_blocks=2",
              "batch_size=4", "logger=none", "device=cpu",
              "search.n_trials=1"]
    runs = {"edm_imagenet64": [f"model.path={edm}", "model.trust_pickle=true"],
            "stable_diffusion": [f"model.path={pipeline}", f"model.prompts={prompts}"]}
    for sweep, model in runs.items():
        out = tmp_path / sweep
        result = run_cli("sweep", f"sweeps={sweep}", *model, *metric, f"out_dir={out}")
        assert result.returncode == 0, result.stderr
        trial = yaml.safe_load(next((out / "exports").glob("*/best.yaml")).read_text())
        nfes = [19] if sweep == "edm_imagenet64" else [10, 20]  # one cell per step count
        assert trial["sampler"]["nfe"] in nfes
        assert sorted(p.name for p in (out / "exports").glob("*/nfe*.yaml")) == [
            f"nfe{n:03d}.yaml" for n in nfes]
