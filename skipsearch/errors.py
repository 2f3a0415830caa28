"""User-facing errors: one line naming the key, the bad value and the fix."""

from __future__ import annotations

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
