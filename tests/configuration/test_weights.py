"""Weights files checked before use: header and metadata without torch, tensors against the net."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from skipsearch.configuration.errors import ConfigError
from skipsearch.configuration.weights import (
    CLASSIFIER_FILE,
    DENOISER_FILE,
    check_network_file,
    read_header,
    state_problem,
)
from skipsearch.metrics.features import (
    DigitsClassifier,
    DigitsClassifierConfig,
    load_digits_classifier,
)
from skipsearch.models.digits import load_digits_denoiser
from skipsearch.models.digits_unet import DigitsUNet, DigitsUNetConfig
from tests.conftest import TINY_CLASSIFIER, TINY_UNET, cli_env


def roots(module: torch.nn.Module) -> set[str]:
    """The first parts of a module's state-dict names."""
    return {name.split(".")[0] for name in module.state_dict()}


def test_the_torch_free_descriptions_match_the_networks():
    assert DENOISER_FILE.fields == tuple(f.name for f in fields(DigitsUNetConfig))
    assert CLASSIFIER_FILE.fields == tuple(f.name for f in fields(DigitsClassifierConfig))
    for config in (TINY_UNET, DigitsUNetConfig()):
        assert roots(DigitsUNet(config)) == set(DENOISER_FILE.roots)
    for config in (TINY_CLASSIFIER, DigitsClassifierConfig()):
        assert roots(DigitsClassifier(config)) == set(CLASSIFIER_FILE.roots)


def test_a_good_file_is_read_without_torch(tiny_weights):
    probe = ("import sys; from pathlib import Path; "
             "from skipsearch.configuration.weights import DENOISER_FILE, check_network_file; "
             f"config, header = check_network_file(Path({str(tiny_weights['model'])!r}), "
             "'model.weights', DENOISER_FILE); "
             "print(config['model_channels'], len(header.shapes), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    expected = len(load_file(str(tiny_weights["model"])))
    assert out.stdout.split() == [str(TINY_UNET.model_channels), str(expected), "False"]


def test_the_header_matches_what_safetensors_reads(tiny_weights):
    header = read_header(tiny_weights["classifier"], "metric.weights")
    tensors = load_file(str(tiny_weights["classifier"]))
    assert dict(header.shapes) == {k: tuple(v.shape) for k, v in tensors.items()}
    assert json.loads(header.metadata["config"])["width"] == TINY_CLASSIFIER.width


def raw_file(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    """A file in safetensors' layout with the given header (JSON) and data."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize("header, data, length, why", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None,
     "lies outside the file"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "tensor a has 8 bytes for shape [3]"),
    ({"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "tensor a has no known dtype"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "tensor a has shape [-2]"),
    ({"__metadata__": {"config": 3}}, b"", None, "__metadata__ is not a mapping of strings"),
    ([1, 2], b"", None, "the header is not a JSON object"),
    ({}, b"", 10**6, "does not fit a file of"),
])
def test_a_broken_header_is_one_error(header, data, length, why, tmp_path):
    path = raw_file(tmp_path / "w.safetensors", header, data, length)
    with pytest.raises(ConfigError) as err:
        read_header(path, "model.weights")
    assert err.value.key == "model.weights" and err.value.value == str(path)
    assert "not a readable safetensors file" in err.value.fix and why in err.value.fix


def test_a_file_cut_short_is_refused(tiny_weights, tmp_path):
    whole = tiny_weights["model"].read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(whole[: len(whole) - 100])
    with pytest.raises(ConfigError, match="lies outside the file"):
        check_network_file(path, "model.weights", DENOISER_FILE)


def test_the_first_difference_is_named():
    want = {"a.weight": (2, 3), "a.bias": (2,), "b.weight": (4,)}
    assert state_problem(want, want, "model.weights") is None
    missing = state_problem({"a.weight": (2, 3)}, want, "model.weights")
    assert missing.startswith("tensor a.bias is missing (the network built from the file's "
                              "config has 3 tensors, the file 1)")
    shaped = state_problem({**want, "a.weight": (3, 3), "b.weight": (5,)}, want, "k")
    assert shaped.startswith("tensor a.weight has shape [3, 3], the network built from the "
                             "file's config wants [2, 3];")
    extra = state_problem({**want, "c.weight": (1,)}, want, "metric.weights")
    assert extra.startswith("tensor c.weight is not in the network built from the file's config")
    assert "set metric.weights=null for the bundled file" in extra


def resaved(source: Path, path: Path, config: dict | None = None, **tensors) -> Path:
    """``source``'s tensors (some replaced) under ``config`` (its own if None)."""
    state = {**load_file(str(source)), **tensors}
    if config is None:
        from safetensors import safe_open

        with safe_open(str(source), framework="pt") as f:
            config = json.loads(f.metadata()["config"])
    save_file(state, str(path), metadata={"config": json.dumps(config)})
    return path


def test_a_config_that_disagrees_with_the_tensors_is_refused_before_loading(tiny_weights,
                                                                             tmp_path):
    wider = {**TINY_UNET.to_dict(), "model_channels": 16}
    path = resaved(tiny_weights["model"], tmp_path / "m.safetensors", wider)
    with pytest.raises(ConfigError) as err:
        load_digits_denoiser(path)
    assert err.value.key == "model.weights"
    assert "has shape [8, 1, 3, 3], the network built from the file's config wants " \
           "[16, 1, 3, 3]" in err.value.fix


def test_the_other_networks_file_is_named(tiny_weights):
    with pytest.raises(ConfigError, match="looks like the digits classifier's weights"):
        load_digits_denoiser(tiny_weights["classifier"])
    with pytest.raises(ConfigError, match="looks like the digits denoiser's weights"):
        load_digits_classifier(tiny_weights["model"])


def test_a_good_file_loads_its_tensors(tiny_weights):
    denoiser = load_digits_denoiser(tiny_weights["model"])
    stored = load_file(str(tiny_weights["model"]))
    assert all(torch.equal(v, stored[k]) for k, v in denoiser.net.state_dict().items())
    classifier = load_digits_classifier(tiny_weights["classifier"])
    assert classifier.config == TINY_CLASSIFIER and not classifier.training
