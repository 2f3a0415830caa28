"""User-facing errors: one line naming the key, the bad value and the fix."""

from __future__ import annotations

import errno
from typing import Any


class ConfigError(Exception):
    """A bad config value or input file; the CLI prints it as one line and exits with code 2."""

    def __init__(self, key: str, value: Any, fix: str) -> None:
        self.key, self.value, self.fix = key, value, fix
        super().__init__(f"{key}={value!r}: {fix}")


def check(ok: bool, key: str, value: Any, fix: str) -> None:
    """Raise ConfigError(key, value, fix) unless ok."""
    if not ok:
        raise ConfigError(key, value, fix)


class RunFailedError(Exception):
    """A failure after work began (disk full, database gone): what happened and how to resume."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command; the message says what was finished and how to resume."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler ending the job) during a command: handled as Ctrl-C, exit code 143."""


def environment_cause(err: BaseException | None) -> BaseException | None:
    """The OS or database error behind ``err`` (itself or in its chain of causes); else None."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) or type(err).__module__.startswith("sqlalchemy"):
            return err
        err = err.__cause__ or err.__context__
    return None


def describe_failure(err: BaseException) -> str:
    """One line on an environment failure: a full disk, an unwritable file, a lost database."""
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        if err.errno == errno.ENOSPC:
            return f"the disk is full{where}"
        return f"{err.strerror or err}{where}"
    cause = getattr(err, "orig", None) or err  # SQLAlchemy keeps the driver's error in .orig
    text = " ".join(str(cause).split())[:200]
    return f"the study database failed ({type(cause).__name__}: {text})"
