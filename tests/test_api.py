"""The Python door: run, resume and read a sweep with the command line's config."""

from __future__ import annotations

import pytest

import skipsearch
from skipsearch.api import as_overrides
from skipsearch.configuration.errors import ConfigError
from skipsearch.tuning.schedule import SkipSchedule
from tests.conftest import run_cli


def tiny(tiny_overrides: list[str], **more: object) -> dict:
    """The tiny CLI overrides as a mapping, with ``more`` on top."""
    pairs = dict(o.split("=", 1) for o in tiny_overrides)
    return {**pairs, "search.steps": [2, 3], "search.n_startup_trials": 1,
            "search.limit_steps": [], **more}


def test_a_mapping_becomes_the_command_lines_overrides():
    assert as_overrides({"search.steps": [3, 4], "search.expand_bounds": False,
                         "metric.final_seed_start": None, "search.bound_limit": {"low": 0.1}}) \
        == ["search.steps=[3,4]", "search.expand_bounds=false", "metric.final_seed_start=null",
            "search.bound_limit={low:0.1}"]
    with pytest.raises(TypeError, match="not one string"):
        as_overrides("search.n_trials=3")


def test_a_sweep_from_python_reads_as_the_command_line_prints_it(tiny_overrides, tmp_path):
    result = skipsearch.sweep(tiny(tiny_overrides, **{"search.n_trials": 2}))
    assert isinstance(result, skipsearch.SweepResult) and result.name == "digits-heun-linear"
    table = result.table()
    assert [row["nfe"] for row in table] == [3, 5] and len(result.trials) == 4
    for row, summary in zip(table, result.rows, strict=True):
        assert row["best"] == summary.best_score and row["trial"] == summary.label
        assert row["confirmed"] and "digits_fd_ae_score" in row  # confirmed on both rulers
    best = result.best()
    assert set(best) == {3, 5} and all(isinstance(s, SkipSchedule) for s in best.values())
    frame = result.to_pandas()
    assert list(frame.index) == [3, 5] and frame.loc[3, "best"] == table[0]["best"]
    # the command line resumes what Python started, and Python reads what it added
    resumed = run_cli("sweep", *tiny_overrides, "search.steps=[2,3]", "search.n_trials=3",
                      "search.n_startup_trials=1", "search.limit_steps=[]")
    assert resumed.returncode == 0, resumed.stderr
    again = skipsearch.open_sweep(tiny(tiny_overrides))
    assert len(again.trials) == 6 and again.name == result.name


def test_bad_overrides_raise_before_anything_is_written(tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match=r"search\.n_trials"):
        skipsearch.sweep(tiny(tiny_overrides, **{"search.n_trials": 0}))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match=r"storage\.url"):
        skipsearch.open_sweep(tiny(tiny_overrides))  # no sweep has run: no storage
