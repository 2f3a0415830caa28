"""A sweep that cannot learn stops: a failed baseline ends it, failures in a row close a cell."""

from __future__ import annotations

import logging

import optuna
import pytest
from optuna.trial import TrialState

from skipsearch.configuration.errors import RunFailedError
from skipsearch.search.allocate import BaselineFailedError, run_cells
from skipsearch.search.record import TrialRecord, write
from skipsearch.search.results import failures_by_reason


class BrokenError(RuntimeError):
    """Stands for a trial failure the sweep catches (NaN images)."""


def failing(reason: str, fail_when=lambda trial: True):
    """An objective that fails with ``reason`` (stored as the sweep stores it) when asked to."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if fail_when(trial):
            write(trial, TrialRecord(fail_reason=f"{reason}: trial {trial.number}"))
            raise BrokenError(reason)
        return x

    return objective


def test_a_failed_baseline_ends_the_sweep_at_once_with_its_reason():
    study = optuna.create_study(study_name="sweep/heun-steps3")
    study.enqueue_trial({"x": 1.0}, user_attrs=TrialRecord(baseline=True).to_attrs())
    with pytest.raises(BaselineFailedError) as err:
        run_cells([study], [failing("the schedule made NaN or infinite images")], target=30,
                  catch=(BrokenError,))
    assert isinstance(err.value, RunFailedError)  # one line and exit 1 at the CLI
    assert "baseline of heun-steps3 failed (the schedule made NaN" in str(err.value)
    assert len(study.trials) == 1  # nothing ran after it


def test_a_cell_that_only_fails_is_left_after_max_failures_and_the_others_go_on(caplog):
    broken, fine = optuna.create_study(study_name="s/a"), optuna.create_study(study_name="s/b")
    with caplog.at_level(logging.WARNING, logger="skipsearch.search.allocate"):
        ran = run_cells([broken, fine], [failing("sigma too large"),
                                         failing("never", lambda t: False)],
                        target=4, catch=(BrokenError,), max_failures=3)
    assert ran == 4
    assert [t.state for t in broken.trials] == [TrialState.FAIL] * 3  # not forever
    assert len(fine.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert "3 trials in a row failed, the last with: sigma too large: trial 2" in caplog.text
    assert failures_by_reason(broken) == {"sigma too large": 3}


def test_a_success_resets_the_count_of_failures_in_a_row():
    study = optuna.create_study(study_name="s/a")
    every_other = failing("flaky", lambda t: t.number % 2 == 0)
    run_cells([study], [every_other], target=3, catch=(BrokenError,), max_failures=2)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 3


def test_failures_are_counted_by_kind_and_skipped_trials_are_not_failures():
    study = optuna.create_study()
    for reason in ("nan images: FID nan after 8", "nan images: FID inf after 4", None):
        trial = study.ask()
        if reason:
            write(trial, TrialRecord(fail_reason=reason))
        study.tell(trial, state=TrialState.FAIL)
    skipped = study.ask()
    write(skipped, TrialRecord(skipped="surplus"))
    study.tell(skipped, state=TrialState.FAIL)
    assert failures_by_reason(study) == {"nan images": 2, "no reason recorded": 1}
