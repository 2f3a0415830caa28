"""Several worker processes on one study: every trial once, none lost, a killed one retried."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from skipsearch.cli import compose_config
from skipsearch.search.group import Sweep, load_sweep
from skipsearch.search.study import make_storage
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
