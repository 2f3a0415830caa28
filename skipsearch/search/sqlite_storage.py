"""An SQLite study storage on which two workers never take the same queued trial.

On a local file system the database journals to a write-ahead log (WAL), synced at
checkpoints: a reader never waits for a writer, and a write costs no sync of its own, so
workers on one file do not queue behind each other's commits. A power loss may undo the last
commits, never more; a killed process loses nothing. Where the file may be shared with other
hosts (NFS and the like), whose processes cannot share the log's index, it keeps SQLite's
rollback journal.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from .clock import phase


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
        with phase("waiting"):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# File system types other hosts may share (prefixes, as /proc/self/mounts names them)
SHARED_FILE_SYSTEMS = ("nfs", "cifs", "smb", "lustre", "gpfs", "beegfs", "glusterfs", "ceph",
                       "9p", "fuse", "afs", "panfs", "virtiofs")


def file_system(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system holding ``path`` (Linux); None where that cannot be read.

    ``mounts``: the text of ``/proc/self/mounts`` (read if not given).
    """
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    target = path.resolve()
    found, kind = None, None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if (point == target or point in target.parents) and \
                (found is None or len(point.parts) >= len(found.parts)):
            found, kind = point, fields[2]
    return kind


def write_ahead_wanted(database: Path) -> bool:
    """Whether the SQLite file at ``database`` can journal to a write-ahead log: not shared."""
    kind = file_system(database.parent)
    return kind is None or not kind.startswith(SHARED_FILE_SYSTEMS)


class WriteAheadConnection(sqlite3.Connection):
    """An SQLite connection in WAL mode, synced at checkpoints (the rollback journal if refused).

    The mode is the file's, so the first connection switches it for every process.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            mode = self.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.DatabaseError:  # busy past the timeout, or read-only: as before
            return
        if mode and str(mode[0]).lower() == "wal":
            self.execute("PRAGMA synchronous=NORMAL")  # safe in WAL mode only


class LockedSQLiteStorage(RDBStorage):
    """Optuna's RDB storage on an SQLite file, taking a queued trial under a file lock.

    Optuna starts a queued trial by reading its state and writing RUNNING if it was WAITING.
    SQLite ignores the row lock Optuna asks for, and Python's sqlite3 opens no transaction
    for a read, so two workers can both read WAITING and both run the trial. Holding a lock
    file beside the database around that read and write makes it one step.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        path = lock_path(url)
        if path is not None and write_ahead_wanted(Path(str(make_url(url).database))):
            engine = dict(kwargs.pop("engine_kwargs", None) or {})
            engine["connect_args"] = {"factory": WriteAheadConnection,
                                      **engine.get("connect_args", {})}
            kwargs["engine_kwargs"] = engine
        super().__init__(url, **kwargs)
        self.lock_path = path

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        """Optuna's state change; taking a queued trial (to RUNNING) holds the lock."""
        if state != TrialState.RUNNING or self.lock_path is None:
            return super().set_trial_state_values(trial_id, state, values)
        with file_lock(self.lock_path):
            return super().set_trial_state_values(trial_id, state, values)
