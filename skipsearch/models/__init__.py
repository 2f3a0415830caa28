"""Model adapters: each turns a checkpoint into a Denoiser with its skips discovered.

The public names are imported on first use, so that ``models.kinds`` (the names the config
check reads) comes without torch.
"""

from __future__ import annotations

from ..lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
