"""Search on one metric, confirm on several: FD-DINOv2, KID and precision/recall beside FID."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("torch_fidelity")
pytest.importorskip("timm")

import torch
import yaml

from skipsearch.metrics.build import build_scorer
from skipsearch.search.group import load_sweep
from skipsearch.search.record import study_attrs
from tests.conftest import run_cli
from tests.support.edm_format.writer import write_snapshot
from tests.support.feature_files import write_dinov2, write_random_inception


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny random InceptionV3 and DINOv2 files, RGB reference images and an RGB EDM model."""
    folder = tmp_path_factory.mktemp("metric_files")
    rng = np.random.default_rng(0)
    reference = folder / "images.npz"
    np.savez(reference, images=rng.integers(0, 256, size=(16, 16, 16, 3), dtype=np.uint8))
    model = folder / "rgb.pkl"
    write_snapshot(model, "EDMPrecond", img_resolution=16, img_channels=3, label_dim=0,
                   model_type="SongUNet", model_channels=16, channel_mult=[1, 2],
                   num_blocks=1, attn_resolutions=[])
    return {"inception": write_random_inception(folder / "inception"),
            "dinov2": write_dinov2(folder / "dinov2_vitl14_pretrain.pth"),
            "reference": reference, "model": model}


def test_a_sweep_on_fid_is_confirmed_on_fd_dinov2_kid_and_precision_recall(files, tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", "model=edm", f"model.path={files['model']}",
                     "model.trust_pickle=true", "metric=fid",
                     "metric.confirm=[fd_dinov2,kid,precision_recall]",
                     f"metric.inception_weights={files['inception']}",
                     f"metric.dinov2_weights={files['dinov2']}",
                     f"metric.reference={files['reference']}", "metric.n_samples=6",
                     "metric.final_samples=8", "search.confirm_blocks=2", "batch_size=8",
                     f"out_dir={out}", "logger=none", "device=cpu", "search.steps=[2]",
                     "search.n_trials=3", "search.n_startup_trials=1")
    assert result.returncode == 0, result.stderr
    assert "FD-DINOv2 change [95% CI]" in result.stdout and "KID change" in result.stdout
    sweep = load_sweep(name="edm-heun-linear", storage=f"sqlite:///{out}/studies.db")
    records = {k: v for k, v in study_attrs(sweep.cells[0]).items() if k.startswith("confirm/")}
    assert records and all(set(r["metrics"]) == {"fid", "fd_dinov2", "kid", "precision_recall"}
                           for r in records.values())
    folder = out / "exports" / "edm-heun-linear"
    record = yaml.safe_load((folder / "nfe003.yaml").read_text())
    score = record["score"]
    assert score["metric"] == "fid" and record["format"] == "skipsearch-schedule/2"
    assert set(score["metrics"]) == {"fd_dinov2", "kid", "precision_recall"}
    for name, m in score["metrics"].items():
        assert np.isfinite(m["value"]) and np.isfinite(m["baseline"])
        assert m["higher_is_better"] == (name == "precision_recall")
        if not record["study"]["is_baseline"]:
            low, high = m["delta_ci95"]
            assert m["delta"] == pytest.approx(m["value"] - m["baseline"], abs=1e-9)
            assert low <= m["delta"] <= high
            assert m["worse"] == (high < 0 if m["higher_is_better"] else low > 0)
    parts = score["metrics"]["precision_recall"]["parts"]
    assert set(parts) == {"precision", "recall"} and all(0 <= v <= 1 for v in parts.values())
    if not record["study"]["is_baseline"]:
        gained = score["delta"] < 0
        assert score["reversed"] == [n for n, m in score["metrics"].items()
                                     if gained and m["worse"]]


def test_edm2_reference_statistics_score_as_the_images_do(files, tmp_path):
    """An EDM2 reference pickle (fid and fd_dinov2 mu/sigma) gives the images' distances."""
    paths = {"inception": files["inception"], "dinov2": files["dinov2"]}
    images_scorer = build_scorer(["fid", "fd_dinov2"], paths, str(files["reference"]),
                                 tmp_path / "cache", "cpu")
    stats = {}
    images = torch.from_numpy(np.load(files["reference"])["images"]).permute(0, 3, 1, 2)
    for name, key in (("fid", "fid"), ("fd_dinov2", "fd_dinov2")):
        features = images_scorer.metrics[name].network(images).numpy()
        stats[key] = {"mu": features.mean(0), "sigma": np.cov(features, rowvar=False)}
    pkl = tmp_path / "ref.pkl"
    pkl.write_bytes(pickle.dumps(stats))
    stats_scorer = build_scorer(["fid", "fd_dinov2"], paths, str(pkl), tmp_path / "cache",
                                "cpu")
    fake = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    values = []
    for scorer in (images_scorer, stats_scorer):
        scorer.reset(names=["fid", "fd_dinov2"], total=10)
        scorer.update(fake)
        values.append(scorer.values())
    assert values[0]["fd_dinov2"] > 0
    for name in ("fid", "fd_dinov2"):
        assert values[1][name] == pytest.approx(values[0][name], rel=1e-6)


def test_objectives_across_two_metrics_give_a_pareto_front(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", *tiny_overrides, "search.objectives=[score,digits_fd_ae]",
                     "search.steps=[2]", "search.n_trials=5", "search.n_startup_trials=2",
                     "search.confirm_top_k=0")
    assert result.returncode == 0, result.stderr
    assert "Pareto front of the search (digits_fd_ae: digits_fid" in result.stdout
    sweep = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db")
    assert len(sweep.directions) == 2
    # what optuna-dashboard names the objectives
    assert all(cell.metric_names == ["digits_fid", "digits_fd_ae"] for cell in sweep.cells)
    done = [t for t in sweep.trials if t.values is not None]
    assert len(done) == 5
    for trial in done:  # the second objective is the second ruler on the same images
        assert trial.values[1] == trial.user_attrs["scores"]["digits_fd_ae"]
        assert trial.values[0] == trial.user_attrs["scores"]["digits_fid"]


def test_confirm_metrics_are_neither_needed_nor_built_without_a_confirmation(tiny_overrides,
                                                                            tmp_path):
    """metric.confirm names FD-DINOv2 but nothing is confirmed: its file is not asked for."""
    result = run_cli("sweep", *tiny_overrides, "metric.confirm=[fd_dinov2]",
                     "search.confirm_top_k=0", "search.steps=[2]", "search.n_trials=1",
                     "search.limit_steps=[]")
    assert result.returncode == 0, result.stderr
    refused = run_cli("sweep", *tiny_overrides, "metric.confirm=[fd_dinov2]",
                      "search.steps=[2]", "search.n_trials=1")
    assert refused.returncode == 2 and "metric.dinov2_weights" in refused.stderr
