"""Up-front checks of what a command will touch: the folders it writes, the study file, a port.

Each check creates nothing and raises a one-line ConfigError naming the key, so a command
fails before any work and leaves no file behind.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from .errors import ConfigError, check
from .urls import safe_url

SQLITE = "sqlite:///"
JOURNAL = "journal:///"
SQLITE_MAGIC = b"SQLite format 3\x00"
OPTUNA_TABLES = {"studies", "trials", "version_info", "alembic_version"}  # Optuna's schema


def unwritable_reason(path: Path) -> str | None:
    """Why ``path`` could not be created and written, leaving nothing behind; None if OK.

    Permission bits are not enough (root passes them on /proc or a read-only share): a file
    is made in the nearest existing folder and removed at once.
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return "no such folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        return f"{probe} is not writable: {err.strerror or err}"
    return None


def check_writable(key: str, folder: Path) -> None:
    """``folder`` (existing or not) can be created and written; ConfigError naming ``key``."""
    reason = unwritable_reason(folder)
    check(reason is None, key, str(folder),
          f"cannot write there ({reason}); give a writable folder")


def study_file(url: str) -> Path | None:
    """The file of a SQLite or Journal storage URL; None for a database server."""
    for prefix in (SQLITE, JOURNAL):
        if url.startswith(prefix):
            return Path(url.removeprefix(prefix))
    return None


def sqlite_tables(path: Path) -> set[str]:
    """The table names of the SQLite database at ``path``, read only; ValueError if unreadable."""
    with path.open("rb") as f:
        header = f.read(len(SQLITE_MAGIC))
    if header == b"":
        return set()  # an empty file: SQLite makes it a new database
    if header != SQLITE_MAGIC:
        raise ValueError("it is not an SQLite database")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    except sqlite3.Error as err:
        raise ValueError(f"it is not a readable SQLite database ({err})") from None
    return {name for (name,) in rows}


def journal_problem(path: Path) -> str | None:
    """Why the file at ``path`` is not an Optuna journal (JSON lines of operations)."""
    if path.stat().st_size == 0:
        return None
    try:
        with path.open("rb") as f:
            first = json.loads(f.readline())
    except (ValueError, UnicodeDecodeError):
        return "its first line is not a journal record (JSON)"
    if not isinstance(first, dict) or "op_code" not in first:
        return "its first line is not an Optuna journal operation"
    return None


def check_study_file(url: str, must_exist: bool) -> None:
    """A SQLite or Journal study file is one Optuna can use, and its folder is writable.

    An existing file must be an Optuna storage (or empty); a SQLite file with other tables
    belongs to another program and is never written. With ``must_exist`` it must also exist.
    """
    path = study_file(url)
    if path is None:
        return
    shown = safe_url(url)
    if not path.exists():
        check(not must_exist, "storage.url", shown,
              "no such study file; run `skipsearch sweep` with the same overrides first")
        reason = unwritable_reason(path.parent)
        check(reason is None, "storage.url", shown,
              f"cannot create the study file there ({reason}); give a writable path")
        return
    check(path.is_file(), "storage.url", shown, "is a folder; give the path of a study file")
    check(os.access(path, os.R_OK), "storage.url", shown, "the study file is not readable")
    if url.startswith(JOURNAL):
        problem = journal_problem(path)
        check(problem is None, "storage.url", shown,
              f"not an Optuna journal file ({problem}); give another path")
        return
    try:
        tables = sqlite_tables(path)
    except ValueError as err:
        raise ConfigError("storage.url", shown,
                          f"cannot use this study file: {err}; give another path (or move "
                          "the file away)") from None
    check(not tables or bool(OPTUNA_TABLES & tables), "storage.url", shown,
          f"an SQLite database of another program (tables {', '.join(sorted(tables)[:5])}); "
          "give another path: skipsearch writes only its own study files")


def check_port_free(host: str, port: int) -> None:
    """Nothing listens on ``host:port`` and the host is this machine's; ConfigError otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError("dashboard.host", host,
                          f"unknown host ({err.strerror}); give 127.0.0.1 (this machine "
                          "only) or 0.0.0.0 (every network)") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind(address)
        except OSError as err:
            in_use = err.errno == errno.EADDRINUSE
            key, value = ("dashboard.port", port) if in_use else ("dashboard.host", host)
            fix = (f"port {port} is in use; give a free one, e.g. dashboard.port={port + 1}"
                   if in_use else f"cannot listen there ({err.strerror}); give an address "
                   "of this machine, e.g. 127.0.0.1")
            raise ConfigError(key, value, fix) from None
