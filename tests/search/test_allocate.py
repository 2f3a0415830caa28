"""Running trials cell by cell beside other workers: waiting for theirs, rerunning a dead one's."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import warnings

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from skipsearch.search.allocate import (
    QuietTrialEnds,
    claim,
    finished_elsewhere,
    optuna_log,
    poll_seconds,
    run_cells,
)
from skipsearch.search.sqlite_storage import LockedSQLiteStorage
from skipsearch.search.study import make_storage
from skipsearch.search.workers import this_worker


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


def heartbeat_storage(url: str, grace_period: int = 60) -> optuna.storages.RDBStorage:
    """An SQLite storage with heartbeats and retries, as the sweep opens it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return LockedSQLiteStorage(
            url, heartbeat_interval=1, grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the other worker asks
def test_a_worker_done_first_waits_for_the_trials_other_workers_run(tmp_path, caplog):
    """What follows the trials (confirmation, export) must see every trial of the sweep."""
    url = f"sqlite:///{tmp_path}/s.db"
    mine = optuna.create_study(study_name="cell", storage=heartbeat_storage(url))
    other = optuna.load_study(study_name="cell", storage=heartbeat_storage(url))
    theirs = other.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
    other._storage.record_heartbeat(theirs._trial_id)
    threading.Timer(1.5, other.tell, args=(theirs, 0.25)).start()
    with caplog.at_level(logging.INFO, logger="skipsearch.search.allocate"):
        ran = run_cells([mine], [lambda t: t.suggest_float("x", 0.0, 1.0)], target=2,
                        catch=(), poll=poll_seconds(mine))
    assert ran == 1
    assert [t.state for t in mine.get_trials()] == [TrialState.COMPLETE] * 2  # theirs ended
    assert "waiting for 1 trial(s) that other workers are running" in caplog.text


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the other worker asks
def test_a_waiting_worker_reruns_the_trial_of_a_worker_that_died(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    mine = optuna.create_study(study_name="cell", storage=heartbeat_storage(url, 1))
    other = optuna.load_study(study_name="cell", storage=heartbeat_storage(url, 1))
    dead = other.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
    other._storage.record_heartbeat(dead._trial_id)  # its last heartbeat
    ran = run_cells([mine], [lambda t: t.suggest_float("x", 0.0, 1.0)], target=2,
                    catch=(), poll=poll_seconds(mine))
    states = [t.state for t in mine.get_trials()]
    assert ran == 2 and states.count(TrialState.COMPLETE) == 2
    assert states[0] == TrialState.FAIL
    assert mine.get_trials()[-1].params == {"x": dead.params["x"]}  # the retry of its trial


def test_without_heartbeats_a_worker_does_not_wait(tmp_path, caplog):
    """A journal file cannot tell a dead worker's trial from a live one: say so, and end."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.log")))
    mine = optuna.create_study(study_name="cell", storage=storage)
    mine.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})  # another worker's
    assert poll_seconds(mine) is None
    with caplog.at_level(logging.INFO, logger="skipsearch.search.allocate"):
        ran = run_cells([mine], [lambda t: t.suggest_float("x", 0.0, 1.0)], target=2,
                        catch=(), poll=None)
    assert ran == 1
    assert "1 trial(s) that other workers are running are not in this worker's" in caplog.text


class Records(logging.Handler):
    """The records that reach a logger's handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_skipped_trial_is_one_line_not_a_traceback(tmp_path, caplog):
    """A surplus or repeated draw is expected among workers; Optuna's traceback is not shown."""
    study = optuna.create_study(study_name="cell", storage=f"sqlite:///{tmp_path}/s.db")

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:
            claim(trial, 0)  # as if the cell were full when this trial began
        return 1.0

    optuna_out = Records()  # what Optuna's own handler would print
    logging.getLogger("optuna").addHandler(optuna_out)
    try:
        with caplog.at_level(logging.INFO, logger="skipsearch.search.allocate"):
            run_cells([study], [objective], target=1, catch=())
    finally:
        logging.getLogger("optuna").removeHandler(optuna_out)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "trial cell#0 skipped: surplus: the cell already has 0 of 0 trials" in caplog.text
    assert not [r.getMessage() for r in optuna_out.records if r.levelno >= logging.WARNING]
    assert not any(isinstance(f, QuietTrialEnds) for f in optuna_log.filters)  # removed after


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the other worker asks
def test_a_trial_whose_worker_process_ended_is_failed_and_rerun_without_waiting(
        tmp_path, caplog):
    """A trial stays RUNNING when its worker is killed; a worker on its host sees the process
    gone and reruns the trial at once, long before its heartbeat goes stale."""
    url = f"sqlite:///{tmp_path}/s.db"
    storage = make_storage(OmegaConf.create({"url": url, "heartbeat_interval": 60,
                                             "grace_period": 120, "max_retry": 1}))
    mine = optuna.create_study(study_name="cell", storage=storage)
    other = optuna.load_study(study_name="cell", storage=heartbeat_storage(url, 120))
    dead = other.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
    other._storage.record_heartbeat(dead._trial_id)  # a heartbeat a moment ago
    probe = subprocess.Popen([sys.executable, "-c", "pass"])
    probe.wait()  # the worker, ended
    dead.set_user_attr("worker", {**this_worker(), "pid": probe.pid})
    with caplog.at_level(logging.INFO):
        ran = run_cells([mine], [lambda t: t.suggest_float("x", 0.0, 1.0)], target=1,
                        catch=(), poll=poll_seconds(mine))
    first, retry = mine.get_trials()
    assert ran == 1 and (first.state, retry.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert first.user_attrs["fail_reason"] == \
        f"its worker (host {socket.gethostname()}, pid {probe.pid}) is gone"
    assert retry.params == first.params and retry.system_attrs["failed_trial"] == 0
    assert "fail_reason" not in retry.user_attrs  # the retry starts clean ...
    assert retry.user_attrs["worker"]["pid"] == os.getpid()  # ... and names who ran it
    assert "waiting for" not in caplog.text and "is gone" in caplog.text
