"""skipsearch: search Skip-Tuning coefficients of diffusion UNets (Ma et al., ICML 2024)."""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

# Public names and the modules that define them; imported on first use, so that the command
# line's help, version and configuration errors never wait for torch.
_EXPORTS = {
    "SkipSchedule": "skipsearch.schedule",
    "apply": "skipsearch.pipelines",
    "find_skips": "skipsearch.pipelines",
    "load_schedule": "skipsearch.schedule_file",
    "remove": "skipsearch.pipelines",
    "skip_tuning": "skipsearch.skips",
}

__all__ = ["SkipSchedule", "__version__", "apply", "find_skips", "load_schedule", "remove",
           "skip_tuning"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
