"""skipsearch: search Skip-Tuning coefficients of diffusion UNets (Ma et al., ICML 2024)."""

__version__ = "0.1.0"

from .export import load_schedule
from .pipelines import apply, remove
from .schedule import SkipSchedule
from .skips import skip_tuning

__all__ = ["SkipSchedule", "__version__", "apply", "load_schedule", "remove", "skip_tuning"]
