"""Watch a sweep that another process runs, for a moment to stop it at."""

from __future__ import annotations

import subprocess
import time

from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from skipsearch.search.group import load_sweep


def running_after_finished(worker: subprocess.Popen, db: str, name: str = "digits-heun-linear",
                           timeout: float = 300) -> list[FrozenTrial] | None:
    """The sweep's trials once one has finished and another samples; None if that never came.

    "Samples" means every parameter of the finished trial is suggested: a trial stopped between
    two suggestions holds only some of them. None when ``worker`` ends or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
        try:
            trials = load_sweep(name=name, storage=db).trials
        except (KeyError, SQLAlchemyError):  # not created yet, or its tables half made
            continue
        if sampling(trials):
            return trials
    return None


def sampling(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The running trials that hold every parameter a finished trial holds."""
    done = [set(t.params) for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return []
    return [t for t in trials if t.state == TrialState.RUNNING and set(t.params) >= done[0]]
