"""The ready sweeps of the ADM, LDM and U-ViT families, on tiny RGB checkpoints."""

from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("torch_fidelity")

import yaml

from .conftest import run_cli
from .guided_format import (
    ADM_LAYOUT,
    LDM_LAYOUT,
    TINY_ADM,
    TINY_LATENT_UVIT,
    write_adm,
    write_autoencoder,
    write_ldm,
    write_uvit,
)
from .test_inception import inception_file, reference_npz  # noqa: F401 (fixtures)


def test_the_family_sweeps_run_with_paths_as_overrides(inception_file, reference_npz,  # noqa: F811
                                                       tmp_path):
    write_adm(tmp_path / "adm.pt", replace(TINY_ADM, in_channels=3, out_channels=6))
    write_ldm(tmp_path / "ldm.ckpt")
    write_autoencoder(tmp_path / "vq", "VQModel", channels=3)
    write_uvit(tmp_path / "uvit.pth", TINY_LATENT_UVIT)
    write_autoencoder(tmp_path / "vae", "AutoencoderKL", channels=3)
    common = [f"metric.inception_weights={inception_file}", f"metric.reference={reference_npz}",
              "metric.n_samples=4", "metric.final_samples=4", "batch_size=4", "logger=none",
              "device=cpu", "search.n_trials=2"]
    runs = {
        "adm_imagenet64": ([f"model.path={tmp_path / 'adm.pt'}", *ADM_LAYOUT], {"heun": 19}),
        "ldm_imagenet256": ([f"model.path={tmp_path / 'ldm.ckpt'}", *LDM_LAYOUT,
                             f"model.autoencoder={tmp_path / 'vq'}"],
                            {"unipc": 10, "heun": 19}),
        "uvit_imagenet256": ([f"model.path={tmp_path / 'uvit.pth'}", "model.num_heads=4",
                              "model.num_classes=10", "model.null_class=10",
                              f"model.autoencoder={tmp_path / 'vae'}"],
                             {"unipc": 10, "heun": 19}),
    }
    for sweep, (model, nfe) in runs.items():
        out = tmp_path / sweep
        result = run_cli("sweep", f"sweeps={sweep}", *model, *common, f"out_dir={out}")
        assert result.returncode == 0, result.stderr
        best = yaml.safe_load(next((out / "exports").glob("*/best.yaml")).read_text())
        assert best["sampler"]["nfe"] == nfe[best["sampler"]["name"]]
