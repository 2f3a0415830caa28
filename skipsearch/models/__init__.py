"""Model adapters: each turns a checkpoint into a Denoiser with its skips discovered.

The public names are imported on first use, so that ``models.kinds`` (the names the config
check reads) comes without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MODEL_KINDS": "skipsearch.models.kinds",
    "TEXT_TO_IMAGE_KINDS": "skipsearch.models.kinds",
    "Denoiser": "skipsearch.models.denoiser",
    "EDMPrecond": "skipsearch.models.denoiser",
    "LOADERS": "skipsearch.models.loading",
    "LoadedModel": "skipsearch.models.loading",
    "load_model": "skipsearch.models.loading",
}

__all__ = ["MODEL_KINDS", "TEXT_TO_IMAGE_KINDS", "Denoiser", "EDMPrecond", "LoadedModel",
           "load_model"]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'skipsearch.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted({*globals(), *_EXPORTS})
