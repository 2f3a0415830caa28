"""skipsearch: search Skip-Tuning coefficients of diffusion UNets (Ma et al., ICML 2024)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names and the modules that define them; imported on first use, so that the command
# line's help, version and configuration errors never wait for torch.
_EXPORTS = {
    "SkipSchedule": "skipsearch.schedule",
    "apply": "skipsearch.pipelines",
    "load_schedule": "skipsearch.export",
    "remove": "skipsearch.pipelines",
    "skip_tuning": "skipsearch.skips",
}

__all__ = ["SkipSchedule", "__version__", "apply", "load_schedule", "remove", "skip_tuning"]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'skipsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted({*globals(), *_EXPORTS})
