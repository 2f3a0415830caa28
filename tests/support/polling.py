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

    None when ``worker`` ends or ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
        try:
            trials = load_sweep(name=name, storage=db).trials
        except (KeyError, SQLAlchemyError):  # not created yet, or its tables half made
            continue
        states = [t.state for t in trials]
        if TrialState.COMPLETE in states and any(
                t.state == TrialState.RUNNING and t.params for t in trials):
            return trials
    return None
