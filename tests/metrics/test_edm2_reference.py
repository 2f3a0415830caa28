"""EDM2's reference pickles: read back exactly, only numpy data unpickled, shapes checked."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from skipsearch.configuration.errors import ConfigError
from skipsearch.metrics.edm2_reference import is_edm2_reference, read_edm2_reference


def edm2_stats(rng: np.random.Generator, dims: dict[str, int]) -> dict:
    """A statistics dict shaped as EDM2's calculate_metrics.py writes it."""
    stats: dict = {"num_images": 50000}
    for name, dim in dims.items():
        features = rng.standard_normal((dim + 5, dim))
        stats[name] = {"mu": features.mean(0), "sigma": np.cov(features, rowvar=False)}
    return stats


def dump(path: Path, data: object, protocol: int | None = None) -> Path:
    """``data`` pickled to ``path`` as EDM2's save_stats does (plain pickle.dump)."""
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", [None, 2, 5])
def test_an_edm2_pickle_reads_back_equal(tmp_path, protocol):
    stats = edm2_stats(np.random.default_rng(0), {"fid": 6, "fd_dinov2": 4})
    path = dump(tmp_path / "img64.pkl", stats, protocol)
    assert is_edm2_reference(path)
    ref = read_edm2_reference(path)
    assert sorted(ref) == ["fd_dinov2", "fid"]
    for name in ("fid", "fd_dinov2"):
        mu, sigma = ref[name]
        assert mu.dtype == sigma.dtype == np.float64
        np.testing.assert_array_equal(mu, stats[name]["mu"])
        np.testing.assert_array_equal(sigma, stats[name]["sigma"])


def test_only_pkl_files_are_edm2_references(tmp_path):
    np.savez(tmp_path / "ref.npz", mu=np.zeros(2), sigma=np.eye(2))
    assert not is_edm2_reference(tmp_path / "ref.npz")
    assert not is_edm2_reference(tmp_path / "missing.pkl")


class Exploit:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Custom:
    """A harmless class that no reference pickle holds."""


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"
    stats = edm2_stats(np.random.default_rng(1), {"fid": 3})
    stats["fid"]["extra"] = Exploit(marker)
    path = dump(tmp_path / "evil.pkl", stats)
    with pytest.raises(ConfigError, match="system") as info:
        read_edm2_reference(path, key="metric.ref")
    assert info.value.key == "metric.ref"
    assert not marker.exists()
    assert "\n" not in str(info.value)


def test_any_other_global_is_refused(tmp_path):
    path = dump(tmp_path / "custom.pkl", {"fid": {"mu": np.zeros(2), "sigma": Custom()}})
    with pytest.raises(ConfigError, match=r"metric\.reference=.*Custom"):
        read_edm2_reference(path)


@pytest.mark.parametrize(("data", "message"), [
    ({"fid": {"mu": np.zeros(3), "sigma": np.eye(2)}}, "shape"),
    ({"fid": {"mu": np.zeros((3, 1)), "sigma": np.eye(3)}}, "shape"),
    ({"fid": {"mu": np.zeros(3)}}, "no mu and sigma"),
    ({"fid": {"mu": np.array([0.0, np.nan]), "sigma": np.eye(2)}}, "NaN"),
    ([np.zeros(3), np.eye(3)], "not a dict"),
    ({"num_images": 3}, "no detector statistics"),
])
def test_malformed_statistics_are_refused(tmp_path, data, message):
    path = dump(tmp_path / "bad.pkl", data)
    with pytest.raises(ConfigError, match=message) as info:
        read_edm2_reference(path)
    assert info.value.key == "metric.reference"


def test_missing_or_truncated_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_edm2_reference(tmp_path / "nope.pkl")
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(edm2_stats(np.random.default_rng(2), {"fid": 3}))[:40])
    with pytest.raises(ConfigError, match="not a readable pickle"):
        read_edm2_reference(path)
