"""The search space from config: skip coefficients of a parameterization, and sampler steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna

from ..errors import ConfigError
from ..schedule import SkipSchedule, param_names


@dataclass(frozen=True)
class Bounds:
    """A closed interval for one coefficient."""

    low: float
    high: float


@dataclass(frozen=True)
class SearchSpace:
    """Bounds per schedule parameter and the step counts to choose from."""

    parameterization: str
    bounds: Mapping[str, Bounds]
    steps: tuple[int, ...]
    levels: tuple[int, ...]

    def suggest(self, trial: optuna.Trial) -> tuple[SkipSchedule, int]:
        """Ask the trial for every parameter; return the schedule and the step count."""
        params = {name: trial.suggest_float(name, b.low, b.high)
                  for name, b in self.bounds.items()}
        steps = trial.suggest_categorical("steps", list(self.steps))
        return SkipSchedule.from_params(self.parameterization, params, self.levels), int(steps)

    def baseline_params(self, steps: int) -> dict[str, float]:
        """Parameters giving every skip the coefficient 1.0 at ``steps``."""
        return {**{name: 1.0 for name in self.bounds}, "steps": steps}


def build_space(parameterization: str, rho_bounds: Mapping[str, Mapping[str, float]],
                steps: Sequence[int], levels: Sequence[int]) -> SearchSpace:
    """Bounds for each parameter of the parameterization; ``default`` covers unnamed ones."""
    bounds = {}
    for name in param_names(parameterization, levels):
        raw = rho_bounds.get(name, rho_bounds.get("default"))
        if raw is None:
            raise ConfigError(f"skip.space.{name}", None,
                              "no bounds for this parameter; give skip.space."
                              f"{name}={{low: 0.5, high: 1.0}} or a skip.space.default")
        bounds[name] = Bounds(float(raw["low"]), float(raw["high"]))
    return SearchSpace(parameterization, bounds, tuple(int(s) for s in steps), tuple(levels))
