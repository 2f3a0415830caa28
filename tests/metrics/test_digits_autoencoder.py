"""The bundled digits autoencoder: a second feature network, independent of the classifier."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import torch
from safetensors.torch import load_file, save_file

from skipsearch.configuration.errors import ConfigError
from skipsearch.configuration.weights import AUTOENCODER_FILE, file_sha256
from skipsearch.data.digits import digits_tensors, train_test_split_indices
from skipsearch.metrics.digits_autoencoder import (
    DIGITS_AUTOENCODER,
    DigitsAutoencoder,
    DigitsAutoencoderConfig,
    autoencoder_config_dict,
    digits_autoencoder_features,
    load_digits_autoencoder,
)
from skipsearch.metrics.features import (
    DIGITS_CLASSIFIER,
    digits_feature_extractor,
    load_digits_classifier,
)

KEY = "metric.autoencoder_weights"


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """The held-out digits of the seed-0 split the bundled networks were trained on."""
    images, labels = digits_tensors()
    _, test_idx = train_test_split_indices(len(labels), 0.2, seed=0)
    return images[test_idx]


@pytest.fixture(scope="module")
def features():
    """The bundled autoencoder as a feature network."""
    return digits_autoencoder_features()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as uint8 in [0, 255]."""
    return ((images + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def test_the_torch_free_description_matches_the_network():
    assert AUTOENCODER_FILE.fields == tuple(f.name for f in fields(DigitsAutoencoderConfig))
    roots = {name.split(".")[0] for name in DigitsAutoencoder(DigitsAutoencoderConfig())
             .state_dict()}
    assert roots == set(AUTOENCODER_FILE.roots)


def test_the_bundled_file_loads_and_is_small(features):
    assert DIGITS_AUTOENCODER.stat().st_size < 2**20
    assert features.name == "digits-autoencoder"
    assert features.sha256 == file_sha256(DIGITS_AUTOENCODER)
    assert (features.num_features, features.img_channels, features.precision) == (32, 1, "fp32")
    assert not load_digits_autoencoder().training


def test_features_are_finite_float64_of_the_bottleneck_size(features, held_out):
    out = features(held_out[:20])
    assert out.shape == (20, 32) and out.dtype == torch.float64
    assert torch.isfinite(out).all() and not out.requires_grad
    assert features(torch.nn.functional.interpolate(held_out[:4], size=32)).shape == (4, 32)


def test_uint8_and_float_images_give_the_same_features(features, held_out):
    quantized = to_uint8(held_out[:16])
    as_float = quantized.float() / 127.5 - 1.0
    assert torch.allclose(features(quantized), features(as_float), atol=1e-5)


def test_the_features_are_not_the_classifiers(features, held_out):
    classifier = digits_feature_extractor()
    assert classifier.num_features == 64 != features.num_features
    assert classifier.sha256 != features.sha256
    assert classifier(held_out[:4]).shape[1] != features(held_out[:4]).shape[1]


def test_held_out_digits_are_reconstructed_far_better_than_a_constant(held_out):
    model = load_digits_autoencoder()
    with torch.no_grad():
        mse = torch.mean((model(held_out) - held_out) ** 2).item()
    constant = torch.mean((held_out - held_out.mean()) ** 2).item()  # the best constant image
    assert mse < 0.05 * constant


def test_the_classifiers_file_as_autoencoder_weights_is_named():
    with pytest.raises(ConfigError) as err:
        digits_autoencoder_features(DIGITS_CLASSIFIER)
    assert err.value.key == KEY and err.value.value == str(DIGITS_CLASSIFIER)
    assert "looks like the digits classifier's weights" in err.value.fix
    with pytest.raises(ConfigError, match="looks like the digits autoencoder's weights") as err:
        load_digits_classifier(DIGITS_AUTOENCODER)
    assert err.value.key == "metric.weights" and f"belongs in {KEY}" in err.value.fix


def test_a_config_that_builds_no_network_is_refused(tmp_path):
    path = tmp_path / "ae.safetensors"
    config = {**autoencoder_config_dict(DigitsAutoencoderConfig()), "img_resolution": 15}
    save_file(load_file(str(DIGITS_AUTOENCODER)), str(path),
              metadata={"config": json.dumps(config)})
    with pytest.raises(ConfigError) as err:
        load_digits_autoencoder(path, "metric.other_key")
    assert err.value.key == "metric.other_key" and "builds no network" in err.value.fix
