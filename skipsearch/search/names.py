"""The search's choices by name (Optuna samplers, pruners) and its pruning stages.

Torch- and Optuna-free, so that the config check answers before either loads; ``study`` and
``pruning`` take their lists from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..configuration.errors import ConfigError

OPTUNA_SAMPLERS = ("tpe", "random", "cmaes", "gp", "grid", "nsga2")
PRUNERS = ("none", "median", "successive_halving")


def stage_counts(fractions: Sequence[float], n_samples: int) -> list[int]:
    """Sample counts at which a trial reports FID before the last one (``n_samples``)."""
    counts = sorted({round(f * n_samples) for f in fractions})
    bad = [c for c in counts if not 2 <= c < n_samples]
    if bad:
        raise ConfigError("pruner.stages", list(fractions),
                          f"every stage must be a fraction of metric.n_samples={n_samples} "
                          "giving 2 .. n_samples - 1 images, e.g. [0.25, 0.5]")
    return counts
