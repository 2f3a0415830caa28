"""Two workers on one SQLite file never both take the same queued trial."""

from __future__ import annotations

import threading

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import TrialState

from skipsearch.search.sqlite_storage import LockedSQLiteStorage, lock_path

READ = models.TrialModel.find_or_raise_by_id.__func__


def pop_at_once(monkeypatch, storage_cls: type[RDBStorage], url: str) -> list[bool]:
    """Two storages (two connections, as two workers have) pop one queued trial together.

    Each waits, after reading the trial's state and before writing it, for the other to have
    read it too (or for a second to pass): the interleaving that loses a queued trial twice.
    """
    optuna.create_study(study_name="cell", storage=url).enqueue_trial({"x": 1.0})
    workers = [storage_cls(url) for _ in range(2)]
    study_id = workers[0].get_study_id_from_name("cell")
    trial_id = workers[0].get_all_trials(study_id)[0]._trial_id
    both_read = threading.Barrier(2, timeout=1.0)

    def read_then_wait(cls, trial_id, session, for_update=False):
        trial = READ(cls, trial_id, session, for_update)
        if for_update and threading.current_thread() is not threading.main_thread():
            try:
                both_read.wait()
            except threading.BrokenBarrierError:
                pass  # the other worker could not read: it is waiting for the lock
        return trial

    monkeypatch.setattr(models.TrialModel, "find_or_raise_by_id", classmethod(read_then_wait))
    popped: list[bool] = []

    def pop(storage: RDBStorage) -> None:
        popped.append(storage.set_trial_state_values(trial_id, state=TrialState.RUNNING))

    threads = [threading.Thread(target=pop, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return popped


def test_plain_sqlite_storage_lets_two_workers_take_one_queued_trial(tmp_path, monkeypatch):
    """The failure the lock is for: without it both workers mark the trial RUNNING."""
    assert pop_at_once(monkeypatch, RDBStorage, f"sqlite:///{tmp_path}/s.db") == [True, True]


def test_a_queued_trial_is_taken_by_exactly_one_worker(tmp_path, monkeypatch):
    popped = pop_at_once(monkeypatch, LockedSQLiteStorage, f"sqlite:///{tmp_path}/s.db")
    assert sorted(popped) == [False, True]
    assert lock_path(f"sqlite:///{tmp_path}/s.db") == tmp_path / "s.db.lock"


def test_studies_run_as_before_on_the_locked_storage(tmp_path):
    storage = LockedSQLiteStorage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(study_name="cell", storage=storage)
    study.enqueue_trial({"x": 0.5})
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[0].params == {"x": 0.5}


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_needs_no_lock(url):
    assert lock_path(url) is None
