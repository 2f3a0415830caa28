"""skipsearch: search Skip-Tuning coefficients of diffusion UNets (Ma et al., ICML 2024)."""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

# Public names and the modules that define them; imported on first use, so that the command
# line's help, version and configuration errors never wait for torch.
_EXPORTS = {
    "SkipSchedule": "skipsearch.tuning.schedule",
    "SweepResult": "skipsearch.api",
    "apply": "skipsearch.tuning.pipelines",
    "find_skips": "skipsearch.tuning.pipelines",
    "load_schedule": "skipsearch.tuning.schedule_file",
    "open_sweep": "skipsearch.api",
    "remove": "skipsearch.tuning.pipelines",
    "skip_tuning": "skipsearch.tuning.skips",
    "sweep": "skipsearch.api",
}

__all__ = ["SkipSchedule", "SweepResult", "__version__", "apply", "find_skips",
           "load_schedule", "open_sweep", "remove", "skip_tuning", "sweep"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
