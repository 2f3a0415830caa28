"""Running trials cell by cell: a trial another worker ended first is not an error."""

from __future__ import annotations

import logging

import optuna
import pytest
from optuna.trial import TrialState

from skipsearch.search.allocate import finished_elsewhere, run_cells


def test_a_queued_trial_another_worker_finished_first_is_not_an_error(tmp_path, caplog):
    """A worker that stalled past its heartbeat's grace period finds its trial ended by another.

    Here the other worker (its own connection to the same file) tells the trial while this one
    is still running it; the sweep goes on, and the study keeps the other worker's result.
    """
    url = f"sqlite:///{tmp_path}/s.db"
    mine = optuna.create_study(study_name="cell", storage=url)
    other = optuna.load_study(study_name="cell", storage=optuna.storages.RDBStorage(url))
    mine.enqueue_trial({"x": 1.0})

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 2.0)
        if trial.number == 0:
            other.tell(trial.number, 1.5)  # the other worker, done with the same trial first
        return x

    with caplog.at_level(logging.WARNING, logger="skipsearch.search.allocate"):
        run_cells([mine], [objective], target=2, catch=())
    trials = mine.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].value == 1.5  # the first tell stands
    assert "another worker ended this trial first" in caplog.text


@pytest.mark.parametrize("message, expected", [
    ("Cannot tell a COMPLETE trial.", True), ("Cannot tell a PRUNED trial.", True),
    ("Cannot tell a FAIL trial.", True), ("Cannot tell a WAITING trial.", False),
    ("The value nan is not acceptable", False)])
def test_only_a_refused_tell_of_a_finished_trial_is_forgiven(message, expected):
    assert finished_elsewhere(ValueError(message)) is expected
