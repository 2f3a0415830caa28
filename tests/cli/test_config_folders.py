"""Hydra's own flags and a user's config folders: --info, --config-dir, hydra.searchpath."""

from __future__ import annotations

import pytest
import yaml

from skipsearch.configuration.paths import CONFIG_ROOT
from tests.conftest import run_cli


@pytest.fixture
def my_folder(tmp_path):
    """A user's folder with a preset of their own, stacked on the ready digits sweep."""
    folder = tmp_path / "myconf"
    (folder / "sweeps").mkdir(parents=True)
    (folder / "sweeps" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - digits\nsearch:\n  n_trials: 3\n")
    return folder


def test_info_prints_hydra_s_view_with_skipsearch_s_search_path():
    result = run_cli("sweep", "--info")
    assert result.returncode == 0, result.stderr
    assert "Config search path" in result.stdout and f"file://{CONFIG_ROOT}" in result.stdout


@pytest.mark.parametrize("how", ["--config-dir", "-cd", "hydra.searchpath"])
def test_a_users_folder_adds_presets_beside_the_ready_ones(how, my_folder):
    where = [f"hydra.searchpath=[{my_folder}]"] if how == "hydra.searchpath" else \
        [how, str(my_folder)]
    result = run_cli("sweep", *where, "sweeps=[mine]", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["search"]["n_trials"] == 3 and cfg["model"]["kind"] == "digits"
    refused = run_cli("sweep", *where, "sweeps=[mine]", "search.n_trials=0")
    assert refused.returncode == 2 and "search.n_trials=0" in refused.stderr  # checked up front


def test_a_preset_nobody_has_is_one_line():
    result = run_cli("sweep", "sweeps=[nobodys]")
    assert result.returncode == 2 and "nobodys" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--config-dir", "/no/such/folder"], ["-cd"],
                                  ["hydra.searchpath=[/no/such/folder]"]])
def test_a_missing_config_folder_is_one_line_before_anything_runs(args, tmp_path):
    result = run_cli("sweep", *args, f"out_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "no such folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
