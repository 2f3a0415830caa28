"""Several worker processes on one study: every trial once, none lost, a killed one retried."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from skipsearch.cli import compose_config
from skipsearch.search import clock as clock_module
from skipsearch.search import sqlite_storage
from skipsearch.search.allocate import POLL_SECONDS, poll_seconds, run_cells
from skipsearch.search.clock import TIMINGS, WorkerClock, timed_storage
from skipsearch.search.group import Sweep, load_sweep
from skipsearch.search.sqlite_storage import LockedSQLiteStorage, file_system
from skipsearch.search.study import FINISHED, make_storage
from skipsearch.search.workers import gone, proc_stat, this_worker
from tests.conftest import run_cli, start_cli
from tests.support.polling import running_after_finished, sampling

POSTGRES = os.environ.get("SKIPSEARCH_TEST_POSTGRES")
PER_CELL = 4


def two_workers(tiny_overrides: list[str], url: str, name: str, workers: int = 2,
                sampler: str = "tpe") -> Sweep:
    """Run workers at once on one sweep; return the sweep when all are done."""
    args = [*tiny_overrides, f"storage.url={url}", f"search.study_name={name}",
            "search.steps=[2,3]", f"search.n_trials={PER_CELL}", "search.n_startup_trials=1",
            "search.confirm_top_k=0", f"search={sampler}"]
    started = [start_cli("sweep", *args, f"search.worker={i}") for i in range(workers)]
    for worker in started:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    storage = make_storage(OmegaConf.create({"url": url, "heartbeat_interval": 60,
                                             "grace_period": 180, "max_retry": 2}))
    return load_sweep(name=name, storage=storage)


def check_no_trial_lost_or_repeated(sweep: Sweep, per_cell: int = PER_CELL) -> None:
    """Every cell holds exactly its count of finished trials, each baseline and draw once.

    A trial that found its cell full or its parameters taken (workers racing) is the only
    kind allowed to fail, and it ran no images.
    """
    assert len(sweep.cells) == 2
    for cell in sweep.cells:
        trials = cell.get_trials()
        assert [t.number for t in trials] == list(range(len(trials)))
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == per_cell, cell.study_name
        for t in trials:
            assert t.state != TrialState.RUNNING and t.state != TrialState.WAITING
            if t.state == TrialState.FAIL:
                assert "skipped" in t.user_attrs and "n_samples" not in t.user_attrs
        baselines = Counter(t.user_attrs["baseline_key"] for t in finished
                            if t.user_attrs.get("baseline"))
        assert list(baselines.values()) == [1]
        drawn = [tuple(sorted(t.params.items())) for t in finished]
        assert len(set(drawn)) == len(drawn)  # no two finished trials share parameters


def test_two_workers_share_one_sqlite_study_and_time_their_parts(tiny_overrides, tmp_path,
                                                                 monkeypatch):
    """On a local file the database journals to a write-ahead log; asked to, each worker writes
    where its time went, and its record of the trials it ran is the storage's."""
    timings = tmp_path / "timings"
    monkeypatch.setenv(TIMINGS, str(timings))
    db = tmp_path / "out" / "studies.db"
    sweep = two_workers(tiny_overrides, f"sqlite:///{db}", "sqlite-study")
    check_no_trial_lost_or_repeated(sweep)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    clocks = [json.loads(p.read_text()) for p in sorted(timings.glob("*.json"))]
    assert len(clocks) == 2
    ran = Counter(t.user_attrs["worker"]["pid"] for t in sweep.trials if t.state in FINISHED)
    for clock in clocks:
        spans = [t for t in clock["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
        assert len(spans) == ran[clock["pid"]]
        assert all(t["start"] <= t["end"] for t in clock["trials"])
        assert set(clock["wall"]) >= {"startup", "reference", "storage", "trial", "finish"}
        assert min(clock["wall"].values()) >= 0 and clock["storage_calls"]["_create_new_trial"]
        life = clock["ended"] - clock["started"]  # the parts add up to the clock's life
        assert abs(sum(clock["wall"].values()) - life) <= 0.01 * life + 0.05
        assert clock["started"] <= clock["marks"]["loop"] <= spans[0]["start"]


def test_the_clock_charges_each_moment_to_the_innermost_phase_of_the_main_thread():
    clock = WorkerClock()
    with clock.phase("trial"):
        with clock.phase("storage"):
            time.sleep(0.02)
        other = threading.Thread(target=lambda: clock.phase("waiting").__enter__())
        other.start()
        other.join()  # another thread's phases are not this one's
        assert clock.stack == ["trial"]
    clock.enter("finish")
    times = clock.to_dict()["wall"]
    assert set(times) == {"startup", "trial", "storage", "finish"}
    assert times["storage"] >= 0.02 > times["trial"]


def test_a_timed_storage_counts_its_calls_and_an_untimed_one_is_left_alone(monkeypatch):
    plain = optuna.storages.RDBStorage("sqlite://")
    assert timed_storage(plain) is plain and "get_trial" not in vars(plain)
    clock = WorkerClock()
    monkeypatch.setattr(clock_module, "CLOCK", clock)
    study = optuna.create_study(storage=timed_storage(optuna.storages.RDBStorage("sqlite://")))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert clock.calls["_create_new_trial"][0] == 2
    assert clock.calls["set_trial_state_values"][0] >= 2
    assert clock.wall["storage"] > 0


def test_run_cells_times_each_trial_and_the_waits_between(monkeypatch):
    clock = WorkerClock()
    monkeypatch.setattr(clock_module, "CLOCK", clock)
    study = optuna.create_study(storage=timed_storage(optuna.storages.RDBStorage("sqlite://")))
    assert run_cells([study], [lambda t: t.suggest_float("x", 0.0, 1.0)], 3, catch=()) == 3
    assert [t["state"] for t in clock.trials] == ["COMPLETE"] * 3
    assert [t["start"] for t in clock.trials] == sorted(t["start"] for t in clock.trials)
    assert set(clock.to_dict()["wall"]) == {"startup", "loop", "trial", "storage", "finish"}
    assert clock.base == "finish" and not clock.stack


MOUNTS = """overlay / overlay rw 0 0
/dev/vda /data ext4 rw 0 0
server:/export /data/shared nfs4 rw 0 0
server:/x /mnt/my\\040disk nfs rw 0 0
"""


@pytest.mark.parametrize("path, kind", [
    ("/data/run/studies.db", "ext4"), ("/tmp/s.db", "overlay"), ("/data/shared/s.db", "nfs4"),
    ("/data/shared", "nfs4"), ("/data/sharedness/s.db", "ext4"), ("/mnt/my disk/s.db", "nfs")])
def test_the_file_system_of_a_path_is_its_innermost_mount(path, kind):
    assert file_system(Path(path), MOUNTS) == kind


def test_a_database_on_a_shared_file_system_keeps_the_rollback_journal(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_storage, "file_system", lambda path: "nfs4")
    shared = LockedSQLiteStorage(f"sqlite:///{tmp_path}/shared.db")
    optuna.create_study(storage=shared).optimize(lambda t: t.suggest_float("x", 0, 1), 1)
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_worker_done_first_looks_again_within_a_second(tmp_path):
    storage = make_storage(OmegaConf.create({"url": f"sqlite:///{tmp_path}/s.db",
                                             "heartbeat_interval": 60, "grace_period": 180,
                                             "max_retry": 2}))
    assert poll_seconds(optuna.create_study(storage=storage)) == POLL_SECONDS == 1.0


def test_two_workers_share_one_journal_study(tiny_overrides, tmp_path):
    url = f"journal:///{tmp_path / 'study.log'}"
    check_no_trial_lost_or_repeated(two_workers(tiny_overrides, url, "journal-study"))


@pytest.mark.skipif(POSTGRES is None, reason="SKIPSEARCH_TEST_POSTGRES is not set "
                    "(.ci/run starts PostgreSQL and sets it)")
def test_two_workers_share_one_postgresql_study(tiny_overrides):
    name = f"workers-{uuid.uuid4().hex[:8]}"
    study = two_workers(tiny_overrides, POSTGRES, name)
    try:
        check_no_trial_lost_or_repeated(study)
    finally:
        for cell in study.cells:  # a sweep is one study per cell
            optuna.delete_study(study_name=cell.study_name, storage=POSTGRES)


def test_a_killed_worker_trial_is_retried_and_the_study_completes(tiny_overrides, tmp_path):
    db = f"sqlite:///{tmp_path / 'out' / 'studies.db'}"
    args = [*tiny_overrides, "storage.heartbeat_interval=1", "storage.grace_period=2",
            "metric.n_samples=2000", "batch_size=100", "search.steps=[2]",
            "search.n_trials=3", "search.confirm_top_k=0"]
    worker = start_cli("sweep", *args)
    killed, before = None, []
    trials = running_after_finished(worker, db)
    if trials is not None:  # killed while it samples
        os.kill(worker.pid, signal.SIGKILL)
        killed = sampling(trials)[0].number
        before = [t for t in trials if t.state == TrialState.COMPLETE]
    worker.communicate(timeout=60)
    assert killed is not None, "the worker never had a running trial after a finished one"

    time.sleep(3)  # longer than the grace period: the killed trial's heartbeat is stale
    again = run_cli("sweep", *args)
    assert again.returncode == 0, again.stderr
    trials = load_sweep(name="digits-heun-linear", storage=db).trials
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[killed].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 3
    for old in before:  # finished trials are untouched
        new = trials[old.number]
        assert (new.state, new.value, new.params) == (old.state, old.value, old.params)


def test_multirun_starts_one_worker_per_index(tiny_overrides, tmp_path):
    result = run_cli("sweep", "--multirun", "sweeps=[digits,workers]", "search.worker=0,1",
                     *tiny_overrides, "search.steps=[2,3]", f"search.n_trials={PER_CELL}",
                     "search.n_startup_trials=1", "search.confirm_top_k=0")
    assert result.returncode == 0, result.stderr
    logs = sorted(p.name for p in (tmp_path / "out" / "logs" / "sweep-multirun").glob("*/*")
                  if p.is_dir())
    assert logs == ["0", "1"]  # two jobs, one per worker index
    storage = f"sqlite:///{tmp_path / 'out' / 'studies.db'}"
    check_no_trial_lost_or_repeated(load_sweep(name="digits-heun-linear",
                                               storage=storage))


def test_the_slurm_preset_selects_submitit_with_one_gpu_per_worker():
    cfg = compose_config(["sweeps=[edm_imagenet64,slurm]"], with_hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.tasks_per_node == 1
    assert cfg.device == "cuda"


def ended_pid() -> int:
    """The process id of a process that ran and ended (and was reaped)."""
    probe = subprocess.Popen([sys.executable, "-c", "pass"])
    probe.wait()
    return probe.pid


def test_a_worker_is_gone_only_when_its_process_surely_ended():
    me = this_worker()
    assert me["host"] == socket.gethostname() and me["pid"] == os.getpid()
    assert not gone(me)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        theirs = {**me, "pid": alive.pid, "started": proc_stat(alive.pid)[1]}
        assert not gone(theirs)
        assert gone({**theirs, "started": theirs["started"] - 1})  # its id, handed out again
        assert not gone({**theirs, "host": "elsewhere"})  # another host's ids mean nothing here
        assert not gone({**theirs, "pidns": "pid:[1]"})  # nor another namespace's ...
        assert not gone({**theirs, "boot": "another"})  # ... or a namesake machine's
    finally:
        alive.kill()
        alive.wait()
    assert gone({**me, "pid": ended_pid()})
    assert not gone(None) and not gone({"host": me["host"]})


def test_a_resumed_sweep_fails_the_trial_of_its_killed_worker_at_once(tiny_overrides, tmp_path):
    """SIGKILL mid-trial, then the same command: no wait for the heartbeat's grace period."""
    db = f"sqlite:///{tmp_path / 'out' / 'studies.db'}"
    args = [*tiny_overrides, "metric.n_samples=2000", "batch_size=100", "search.steps=[2]",
            "search.n_trials=2", "search.confirm_top_k=0"]
    worker = start_cli("sweep", *args)
    killed = None
    trials = running_after_finished(worker, db)
    if trials is not None:
        os.kill(worker.pid, signal.SIGKILL)
        killed = sampling(trials)[0].number
    worker.communicate(timeout=60)
    assert killed is not None, "the worker never had a running trial after a finished one"

    again = run_cli("sweep", *args)  # the cell is full but for the dead worker's trial
    assert again.returncode == 0, again.stderr
    trials = load_sweep(name="digits-heun-linear", storage=db).trials
    assert trials[killed].state == TrialState.FAIL
    assert trials[killed].user_attrs["fail_reason"] == (
        f"its worker (host {socket.gethostname()}, pid {worker.pid}) is gone")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[killed].params
    assert "fail_reason" not in retries[0].user_attrs
    assert retries[0].user_attrs["worker"]["pid"] == os.getpid()  # the resume ran it
    logs = "".join(p.read_text() for p in (tmp_path / "out" / "logs").rglob("*.log"))
    for text in (again.stdout, again.stderr, logs):
        assert "waiting for" not in text
    assert "is gone" in logs
