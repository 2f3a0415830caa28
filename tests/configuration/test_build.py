"""The settings a command runs with: built once, typed, with only the components it uses."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from skipsearch.cli import compose_config, main
from skipsearch.configuration import build as config
from skipsearch.configuration.build import build
from skipsearch.configuration.errors import ConfigError
from skipsearch.configuration.options import ExportOptions, SampleOptions
from skipsearch.execution.seed_range import SeedRange
from skipsearch.search.storage import StorageSettings


@pytest.fixture
def counted(monkeypatch):
    """Every call of ``config.build`` (the one pass of checks), by command."""
    calls: list[str] = []
    real = config.build

    def counting(cfg, command):
        calls.append(command)
        return real(cfg, command)

    monkeypatch.setattr(config, "build", counting)
    for runner in ("inspect", "sample", "export"):  # where a runner would build them again
        monkeypatch.setattr(importlib.import_module(f"skipsearch.cli.{runner}"), "build",
                            counting)
    return calls


def test_a_sweep_gets_typed_components(tiny_overrides):
    cfg = compose_config([*tiny_overrides, "search.steps=[2,3]", "pruner=median",
                          "pruner.stages=[0.5]", "search.samplers=[heun,euler]"])
    s = build(cfg, "sweep")
    assert s.search.steps == (2, 3) and s.search.n_trials == cfg.search.n_trials
    assert s.search.objectives == ("digits_fid",) and not s.search.multi_objective
    assert s.metric.name == "digits_fid" and s.metric.confirm == ("digits_fd_ae",)
    assert s.pruner.kind == "median" and s.pruner.stages == (12,)  # half of 24 images
    assert s.metric.search == SeedRange(0, 24)
    assert s.metric.final == SeedRange(24, 30)  # right after the search's seeds
    assert s.final_protocol.seed_range == s.metric.final
    assert sorted(s.samplers) == ["euler", "heun"] and s.samplers["heun"] == s.sampler
    assert s.skip.space["rho_top"] == (cfg.skip.space.rho_top.low, cfg.skip.space.rho_top.high)
    assert s.tracker.kind == "none" and s.execution.batch_size == 12
    assert s.options == ExportOptions(Path(cfg.export_dir))
    assert s.study_name == "digits-heun-linear"


def test_each_command_builds_only_what_it_uses(tiny_overrides, tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    base = [*tiny_overrides, f"storage.url={url}"]
    sweep = build(compose_config(base), "sweep")  # creates no file: a sweep may start one
    assert not (tmp_path / "studies.db").exists() and sweep.storage.url == url
    (tmp_path / "studies.db").touch()  # an empty file is a new SQLite storage
    exported = build(compose_config(base), "export")
    assert exported.model is None and exported.execution is None and exported.search is None
    assert exported.metric.final == SeedRange(24, 30)
    inspected = build(compose_config([*base, "metric.reference=no/such/folder"]), "inspect")
    assert inspected.model.kind == "digits" and inspected.storage is None  # no metric files
    with pytest.raises(ConfigError, match=r"metric\.reference"):
        build(compose_config([*base, "metric.reference=no/such/folder"]), "sample")
    unscored = build(compose_config([*base, "metric.reference=no/such/folder",
                                     "sample.score=false"]), "sample")
    assert unscored.options == SampleOptions(None, 100, False, tmp_path / "out" / "samples")


def test_the_fixed_schedule_fills_unnamed_parameters(tiny_overrides):
    cfg = compose_config([*tiny_overrides, "skip=per_level", "skip.params.default=0.9",
                          "+skip.params.rho_level1=0.5"])
    schedule = build(cfg, "inspect").fixed_schedule([0, 1, 1, 2])
    assert schedule.coefficients == (0.9, 0.5, 0.5, 0.9)


def test_the_command_line_checks_once_and_hands_the_settings_over(counted, tiny_overrides,
                                                                  capsys):
    assert main(["inspect", *tiny_overrides]) == 0
    assert counted == ["inspect"]  # the precheck's build; the runner used it
    assert "rho" in capsys.readouterr().out


def test_each_job_of_a_multirun_is_checked_once(counted, tiny_overrides, capsys):
    jobs = "skip.params.rho_top=0.8,0.9"
    assert main(["inspect", "--multirun", *tiny_overrides, jobs]) == 0
    assert counted == ["inspect", "inspect"]
    out = capsys.readouterr().out
    assert "0.8000" in out and "0.9000" in out


def test_a_runner_called_without_settings_builds_them(counted, tiny_overrides):
    from skipsearch.cli.inspect import run_inspect

    run_inspect(compose_config(tiny_overrides))
    assert counted == ["inspect"]


def test_storage_settings_never_show_a_password():
    settings = StorageSettings("postgresql+psycopg://user:s3cret@db.example/studies")
    assert "s3cret" not in repr(settings) and "db.example" in repr(settings)


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_workers_started_in_the_same_second_log_to_their_own_folders(key):
    """Two commands started together (the docs' many-workers recipe) share no log file."""
    from omegaconf import OmegaConf

    first, second = (OmegaConf.select(compose_config(["out_dir=o"], with_hydra=True), key)
                     for _ in range(2))
    assert first.startswith("o/logs/") and second.startswith("o/logs/")
    assert first != second  # composed milliseconds apart, in the same second as a rule
