"""SkipSchedule: one Skip-Tuning coefficient per skip, bottom to top, and its parameterizations.

Pure data: nothing here knows torch modules or Optuna. ``linear`` is the paper's
``rho_i = rho_bottom + i * (rho_top - rho_bottom) / (k - 1)`` with i = 0 at the skip next to the
bottleneck (Ma et al. 2024, Sec. 4); ``per_level`` gives every skip of a resolution level one
coefficient; ``per_skip`` gives each skip its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PARAMETERIZATIONS = ("linear", "per_level", "per_skip")


def linear_coefficients(rho_top: float, rho_bottom: float, k: int) -> tuple[float, ...]:
    """The paper's linear interpolation from rho_bottom (i = 0) to rho_top (i = k - 1)."""
    if k == 1:
        return (float(rho_bottom),)
    return tuple(rho_bottom + i * (rho_top - rho_bottom) / (k - 1) for i in range(k))


def level_param(level: int) -> str:
    """Name of the per-level coefficient of resolution level ``level`` (0 = full resolution)."""
    return f"rho_level{level}"


def skip_param(index: int) -> str:
    """Name of the per-skip coefficient of skip ``index`` (0 = next to the bottleneck)."""
    return f"rho_skip{index}"


def param_names(parameterization: str, levels: Sequence[int]) -> list[str]:
    """The parameters a parameterization needs for skips at ``levels`` (bottom to top)."""
    if parameterization == "linear":
        return ["rho_top", "rho_bottom"]
    if parameterization == "per_level":
        return [level_param(lv) for lv in sorted(set(levels), reverse=True)]
    if parameterization == "per_skip":
        return [skip_param(i) for i in range(len(levels))]
    raise ValueError(f"unknown parameterization {parameterization!r}; "
                     f"choose one of {', '.join(PARAMETERIZATIONS)}")


@dataclass(frozen=True)
class SkipSchedule:
    """Coefficients rho_i for every skip (index 0 next to the bottleneck) and their origin."""

    coefficients: tuple[float, ...]
    parameterization: str = "per_skip"
    params: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_params(cls, parameterization: str, params: Mapping[str, float],
                    levels: Sequence[int]) -> SkipSchedule:
        """Expand ``params`` of a parameterization to one coefficient per skip at ``levels``."""
        names = param_names(parameterization, levels)
        missing = [n for n in names if n not in params]
        if missing:
            raise ValueError(f"{parameterization} schedule needs {', '.join(missing)}")
        if parameterization == "linear":
            coeffs = linear_coefficients(params["rho_top"], params["rho_bottom"], len(levels))
        elif parameterization == "per_level":
            coeffs = tuple(params[level_param(lv)] for lv in levels)
        else:
            coeffs = tuple(params[skip_param(i)] for i in range(len(levels)))
        used = {n: float(params[n]) for n in names}
        return cls(tuple(float(c) for c in coeffs), parameterization, used)

    @classmethod
    def identity(cls, k: int) -> SkipSchedule:
        """All coefficients 1.0: the un-tuned model."""
        return cls((1.0,) * k, "per_skip", {skip_param(i): 1.0 for i in range(k)})

    @property
    def is_identity(self) -> bool:
        """True when every coefficient is exactly 1.0."""
        return all(c == 1.0 for c in self.coefficients)

    def to_dict(self) -> dict:
        """A YAML/JSON-friendly dict."""
        return {"parameterization": self.parameterization, "params": dict(self.params),
                "coefficients": list(self.coefficients)}

    @classmethod
    def from_dict(cls, data: Mapping) -> SkipSchedule:
        """Inverse of ``to_dict``."""
        return cls(tuple(float(c) for c in data["coefficients"]),
                   str(data.get("parameterization", "per_skip")),
                   {str(k): float(v) for k, v in dict(data.get("params", {})).items()})
