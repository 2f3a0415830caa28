"""Ctrl-C and failures after work began: one line, an exit code, a study that resumes."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from skipsearch.cli import compose_config, guarded
from skipsearch.cli.sweep import run_sweep
from skipsearch.search.group import load_sweep
from skipsearch.search.study import FINISHED
from skipsearch.tuning import schedule_file
from tests.conftest import run_cli, start_cli
from tests.support.polling import running_after_finished
from tests.support.wandb_records import records

SLOW = ["metric.n_samples=2000", "batch_size=100", "search.steps=[2]", "search.n_trials=3",
        "search.confirm_top_k=0"]


def closed(run_file: Path) -> bool:
    """True when a W&B run file ends its run (an exit record)."""
    return any(r.WhichOneof("record_type") == "exit" for r in records(run_file))


def start_and_signal(args: list[str], db: str, signum: int) -> tuple[int, str]:
    """Start a sweep, send it ``signum`` while a trial runs after a finished one; its end."""
    worker = start_cli("sweep", *args)
    sent = running_after_finished(worker, db) is not None
    if sent:
        worker.send_signal(signum)
    _, err = worker.communicate(timeout=120)
    assert sent, "the sweep never had a running trial after a finished one"
    return worker.returncode, err


# Ctrl-C, and SIGTERM (what SLURM and Kubernetes send first): the same end, its own code
STOPS = {"ctrl-c": (signal.SIGINT, 130, "interrupted", "interrupted (Ctrl-C)"),
         "sigterm": (signal.SIGTERM, 143, "terminated by SIGTERM", "terminated by SIGTERM")}


@pytest.mark.parametrize("stop", list(STOPS))
def test_a_stop_is_one_line_and_its_exit_code_and_the_same_command_resumes(
        tiny_overrides, tmp_path, stop):
    signum, exit_code, said, reason = STOPS[stop]
    out = tmp_path / "out"
    db = f"sqlite:///{out / 'studies.db'}"
    args = [*(o for o in tiny_overrides if o != "logger=none"), "logger=wandb", *SLOW]
    code, err = start_and_signal(args, db, signum)
    assert code == exit_code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    study = load_sweep(db, "digits-heun-linear")
    finished = len(study.get_trials(states=FINISHED))
    assert err.strip().splitlines()[-1] == (f"skipsearch: {said}; {finished} trials "
                                            "finished, resume with the same command")
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"] == reason
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert not (out / "exports").exists()  # no partial export
    run_files = list((out / "wandb").rglob("run-*.wandb"))
    assert run_files and all(closed(f) for f in run_files)

    again = run_cli("sweep", *args)
    assert again.returncode == 0, again.stderr
    study = load_sweep(db, "digits-heun-linear")
    done = study.get_trials(states=FINISHED)
    assert len(done) == 3  # search.n_trials, exactly
    assert len({tuple(sorted(t.params.items())) for t in done}) == len(done)  # none repeated
    assert (out / "exports" / "digits-heun-linear" / "best.yaml").is_file()


def test_a_full_disk_at_export_is_one_line_and_the_study_keeps_its_trials(
        tiny_overrides, tmp_path, monkeypatch, capsys):
    cfg = compose_config([*tiny_overrides, "search.steps=[2]", "search.n_trials=2",
                          "search.confirm_top_k=0"])
    real_write = Path.write_text

    def full(path, *args, **kwargs):
        if path.name.startswith(".nfe"):  # the first export file
            real_write(path, "half")  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    code = guarded(lambda: run_sweep(cfg))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("skipsearch: error: the disk is full: "), err
    assert err[0].endswith("2 trials finished and stay in the study; resume with the same "
                           "command once that is fixed")
    assert not list((tmp_path / "out" / "exports").rglob("*.*"))  # no half-written file
    monkeypatch.setattr(Path, "write_text", real_write)
    assert guarded(lambda: run_sweep(cfg)) == 0  # the same command again: exports
    assert (tmp_path / "out" / "exports" / "digits-heun-linear" / "best.yaml").is_file()


def test_a_database_lost_mid_sweep_is_one_line(tiny_overrides, tmp_path, monkeypatch, capsys):
    cfg = compose_config([*tiny_overrides, "search.steps=[2]", "search.n_trials=3",
                          "search.confirm_top_k=0"])
    storage = optuna.storages.RDBStorage
    real_set = storage.set_trial_state_values
    told = []

    def lost(self, trial_id, state, values=None):  # the server goes away after one trial
        if state != TrialState.RUNNING:
            if told:
                raise OperationalError("UPDATE trials ...", {},
                                       Exception("server closed the connection"))
            told.append(trial_id)
        return real_set(self, trial_id, state, values)

    monkeypatch.setattr(storage, "set_trial_state_values", lost)
    code = guarded(lambda: run_sweep(cfg))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "the study database failed (Exception: server closed the " \
        "connection)" in err[0], err
    assert err[0].endswith("resume with the same command once that is fixed")
    assert not (tmp_path / "out" / "exports").exists()


@pytest.mark.parametrize("bad", [[1.0] * 5, [1.0, 1.0, float("nan"), 1.0, 1.0, 1.0],
                                 [0.0] * 6, [11.0] * 6])
def test_skip_tuning_refuses_unusable_coefficients(tiny_denoiser, bad):
    from skipsearch import skip_tuning

    with pytest.raises(ValueError, match="coefficient"):
        with skip_tuning(tiny_denoiser, tiny_denoiser.skips, bad):
            pass
    assert not any(m._forward_pre_hooks for m in tiny_denoiser.modules())


def test_load_schedule_names_the_missing_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(f"format: {schedule_file.FORMAT}\nschedule: {{coefficients: [0.9, 0.8]}}\n")
    loaded = schedule_file.load_schedule(path)  # enough for apply
    assert loaded.schedule.coefficients == (0.9, 0.8)
    with pytest.raises(schedule_file.ConfigError, match="the key model is missing"):
        schedule_file.load_schedule(path, sections=("model", "sampler", "score"))


def test_sigterm_in_any_command_is_one_line_143_and_the_handler_before_comes_back(capsys):
    seen = []

    def before(signum, frame) -> None:  # this process's own handler (so no test dies of it)
        seen.append(signum)

    def work() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler sends it
        time.sleep(10)  # cut short by the signal

    previous = signal.signal(signal.SIGTERM, before)
    try:
        code = guarded(work)
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143 and not seen
    assert capsys.readouterr().err == "skipsearch: terminated by SIGTERM\n"


def test_a_worker_whose_sweep_is_deleted_ends_with_one_line(tiny_overrides, tmp_path):
    db = f"sqlite:///{tmp_path / 'out' / 'studies.db'}"
    args = [*tiny_overrides, *SLOW, "search.n_trials=50"]
    worker = start_cli("sweep", *args)
    deadline, refused, deleted = time.monotonic() + 300, None, None
    while deleted is None and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
        try:
            trials = load_sweep(db, "digits-heun-linear").trials
        except (KeyError, SQLAlchemyError):
            continue  # not created yet, or its tables are being created (by both of us)
        if any(t.state == TrialState.RUNNING for t in trials):
            refused = run_cli("studies", "delete", "digits-heun-linear", "--yes",
                              f"storage.url={db}")
            deleted = run_cli("studies", "delete", "digits-heun-linear", "--yes", "--force",
                              f"storage.url={db}")
    _, err = worker.communicate(timeout=120)
    assert refused is not None, "the sweep never had a running trial"
    assert refused.returncode == 2 and "1 running trial(s)" in refused.stderr, refused.stderr
    assert "--force" in refused.stderr
    assert deleted.returncode == 0 and "deleted sweep digits-heun-linear" in deleted.stdout
    assert worker.returncode == 1, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(
        "skipsearch: error: sweep digits-heun-linear was deleted from the storage while this "
        "worker ran it"), err
