"""The ready sweeps of the ADM, LDM and U-ViT families: their settings, and runs on tiny files."""

from __future__ import annotations

import pytest
import yaml

from skipsearch.cli import compose_config
from skipsearch.samplers import nfe_of
from skipsearch.samplers.spec import sampler_choices
from tests.conftest import run_cli
from tests.support.guided_format import (
    ADM_LAYOUT,
    LDM_LAYOUT,
    TINY_LATENT_UVIT,
    write_adm,
    write_autoencoder,
    write_ldm,
    write_uvit,
)

# The paper's settings: ADM with Heun at 10 steps (19 NFE); LDM and U-ViT at 10 steps with
# UniPC and Heun.
SETTINGS = {"adm_imagenet64": ("adm", {"heun": 19}),
            "ldm_imagenet256": ("ldm", {"unipc": 10, "heun": 19}),
            "uvit_imagenet256": ("uvit", {"unipc": 10, "heun": 19})}


@pytest.mark.parametrize("sweep", sorted(SETTINGS))
def test_the_family_sweeps_hold_the_papers_settings(sweep):
    kind, nfe = SETTINGS[sweep]
    cfg = compose_config([f"sweeps={sweep}"])
    assert cfg.model.kind == kind and cfg.metric.name == "fid"
    assert list(cfg.search.steps) == [10] and cfg.skip.parameterization == "linear"
    assert {name: nfe_of(name, 10) for name in sampler_choices(cfg)} == nfe


def test_the_family_sweeps_run_with_paths_as_overrides(tiny_weights, tmp_path):
    write_adm(tmp_path / "adm.pt")
    write_ldm(tmp_path / "ldm.ckpt")
    write_autoencoder(tmp_path / "vq", "VQModel")
    write_uvit(tmp_path / "uvit.pth", TINY_LATENT_UVIT)
    write_autoencoder(tmp_path / "vae", "AutoencoderKL")
    # Tiny 1-channel models scored by the digits network (the InceptionV3 path of the ready
    # sweeps is tested in test_inception.py); two steps instead of ten, both solvers for ADM.
    common = ["metric=digits_fid", f"metric.weights={tiny_weights['classifier']}",
              "metric.n_samples=6", "metric.final_samples=6", "search.confirm_blocks=3",
              "batch_size=6", "logger=none",
              "device=cpu", "search.n_trials=2", "search.steps=[2]",
              "search.samplers=[unipc,heun]"]
    runs = {
        "adm_imagenet64": [f"model.path={tmp_path / 'adm.pt'}", *ADM_LAYOUT],
        "ldm_imagenet256": [f"model.path={tmp_path / 'ldm.ckpt'}", *LDM_LAYOUT,
                            f"model.autoencoder={tmp_path / 'vq'}"],
        "uvit_imagenet256": [f"model.path={tmp_path / 'uvit.pth'}", "model.num_heads=4",
                             "model.num_classes=10", "model.null_class=10",
                             f"model.autoencoder={tmp_path / 'vae'}"],
    }
    for sweep, model in runs.items():
        out = tmp_path / sweep
        result = run_cli("sweep", f"sweeps={sweep}", *model, *common, f"out_dir={out}")
        assert result.returncode == 0, result.stderr
        best = yaml.safe_load(next((out / "exports").glob("*/best.yaml")).read_text())
        assert best["sampler"]["nfe"] == {"unipc": 2, "heun": 3}[best["sampler"]["name"]]
