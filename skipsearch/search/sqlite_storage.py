"""An SQLite study storage on which two workers never take the same queued trial."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.engine import make_url


def lock_path(url: str) -> Path | None:
    """The lock file beside the SQLite database at ``url``; None for an in-memory one."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.lock")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) across processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class LockedSQLiteStorage(RDBStorage):
    """Optuna's RDB storage on an SQLite file, taking a queued trial under a file lock.

    Optuna starts a queued trial by reading its state and writing RUNNING if it was WAITING.
    SQLite ignores the row lock Optuna asks for, and Python's sqlite3 opens no transaction
    for a read, so two workers can both read WAITING and both run the trial. Holding a lock
    file beside the database around that read and write makes it one step.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.lock_path = lock_path(url)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        """Optuna's state change; taking a queued trial (to RUNNING) holds the lock."""
        if state != TrialState.RUNNING or self.lock_path is None:
            return super().set_trial_state_values(trial_id, state, values)
        with file_lock(self.lock_path):
            return super().set_trial_state_values(trial_id, state, values)
