"""skipsearch: search Skip-Tuning coefficients of diffusion UNets (Ma et al., ICML 2024)."""

__version__ = "0.1.0"

from .export import load_schedule
from .schedule import SkipSchedule
from .skips import skip_tuning

__all__ = ["SkipSchedule", "__version__", "load_schedule", "skip_tuning"]
