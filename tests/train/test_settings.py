"""``train-toy`` writes under out_dir; the bundled weights change only when asked to."""

from __future__ import annotations

import pytest

from skipsearch.cli import compose_config
from skipsearch.cli.train_toy import run_train_toy
from skipsearch.configuration.errors import ConfigError
from skipsearch.configuration.paths import ASSETS_DIR
from skipsearch.configuration.weights import file_sha256
from skipsearch.metrics.digits_autoencoder import load_digits_autoencoder
from skipsearch.models.digits import load_digits_denoiser
from skipsearch.train.settings import check_train_toy

QUICK = ["classifier.epochs=1", "autoencoder.epochs=1", "diffusion.steps=2",
         "diffusion.model_channels=4", "diffusion.channel_mult=[1,2]", "grid.n=2", "grid.steps=2"]


def test_outputs_go_under_out_dir_by_default(tmp_path):
    outputs = check_train_toy(compose_config([f"out_dir={tmp_path}"], "train_toy"))
    assert outputs.assets_dir == tmp_path / "train-toy" / "assets"
    assert outputs.docs_dir == tmp_path / "train-toy"
    assert not any(tmp_path.iterdir())  # checked, nothing made


def test_the_bundled_weights_are_refreshed_only_on_request(tmp_path):
    cfg = compose_config([f"out_dir={tmp_path}", "assets_dir=package"], "train_toy")
    assert check_train_toy(cfg).assets_dir == ASSETS_DIR


def test_a_quick_run_leaves_the_bundled_weights_alone(tmp_path):
    bundled = {p.name: file_sha256(p) for p in ASSETS_DIR.glob("*.safetensors")}
    written = run_train_toy(compose_config([f"out_dir={tmp_path}", *QUICK], "train_toy"))
    assert written["model"] == tmp_path / "train-toy" / "assets" / "digits_edm.safetensors"
    assert all(path.is_relative_to(tmp_path) and path.is_file() for path in written.values())
    assert {p.name: file_sha256(p) for p in ASSETS_DIR.glob("*.safetensors")} == bundled
    assert len(load_digits_denoiser(written["model"]).skips) == 4
    assert written["autoencoder"].parent == written["model"].parent
    assert load_digits_autoencoder(written["autoencoder"]).config.feature_dim == 32
    assert "final held-out mse" in written["log"].read_text()


def test_the_autoencoder_alone_can_be_trained(tmp_path):
    overrides = [f"out_dir={tmp_path}", "autoencoder.epochs=1", "autoencoder.feature_dim=8",
                 "diffusion.enabled=false", "classifier.enabled=false"]
    written = run_train_toy(compose_config(overrides, "train_toy"))
    assert set(written) == {"autoencoder", "log"}
    assert load_digits_autoencoder(written["autoencoder"]).config.feature_dim == 8


@pytest.mark.parametrize("override, why", [
    ("autoencoder.enabled=maybe", "autoencoder.enabled='maybe'"),
    ("autoencoder.epochs=0", "autoencoder.epochs=0"),
    ("autoencoder.batch_size=1.5", "autoencoder.batch_size=1.5"),
    ("autoencoder.lr=nan", "autoencoder.lr=nan"),
    ("autoencoder.test_fraction=0", "autoencoder.test_fraction=0: must be a number in (0, 1)"),
    ("autoencoder.test_fraction=1.0", "autoencoder.test_fraction=1.0"),
    ("autoencoder.width=0", "autoencoder.width=0"),
    ("autoencoder.feature_dim=-1", "autoencoder.feature_dim=-1"),
])
def test_a_bad_autoencoder_key_is_refused_up_front(override, why, tmp_path):
    cfg = compose_config([f"out_dir={tmp_path}", override], "train_toy")
    with pytest.raises(ConfigError) as err:
        check_train_toy(cfg)
    assert str(err.value).startswith(why)
    assert not any(tmp_path.iterdir())
