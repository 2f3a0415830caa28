"""SkipSchedule: one Skip-Tuning coefficient per skip, bottom to top, and its parameterizations.

Pure data: nothing here knows torch modules or Optuna. ``linear`` is the paper's
``rho_i = rho_bottom + i * (rho_top - rho_bottom) / (k - 1)`` with i = 0 at the skip next to the
bottleneck (Ma et al. 2024, Sec. 4); ``per_level`` gives every skip of a resolution level one
coefficient; ``per_skip`` gives each skip its own.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PARAMETERIZATIONS = ("linear", "per_level", "per_skip")
PROFILES = ("constant", "rising", "falling", "rising_time", "falling_time")
# Profiles linear in the sampler's time t = sigma (EDM's sigma(t) = t), not in log sigma.
TIME_PROFILES = ("rising_time", "falling_time")
# Hard range of a coefficient, (low, high]: a skip can be weakened to nearly nothing or
# amplified, never removed (0), negated or blown up; the paper's optima lie in 0.5 .. 1.
RHO_RANGE = (0.0, 10.0)
# FreeU's factors (Si et al., CVPR 2024): backbone b and skip s of the two lowest decoder stages.
FREEU_KEYS = ("b1", "b2", "s1", "s2")
# What a sweep tunes: the skip coefficients, FreeU's factors, or both together.
METHODS = ("skip_tuning", "freeu", "skip_tuning+freeu")


def coefficient_problem(values: Sequence, n_skips: int | None = None) -> str | None:
    """Why ``values`` are not usable skip coefficients (for ``n_skips`` skips); None if they are.

    Every coefficient must be a finite number in ``RHO_RANGE``; one check for schedule files,
    config values and the Python API.
    """
    if n_skips is not None and len(values) != n_skips:
        return (f"{len(values)} coefficients for a model with {n_skips} skips; a schedule needs "
                "one coefficient per skip")
    low, high = RHO_RANGE
    for i, c in enumerate(values):
        if not isinstance(c, numbers.Real) or isinstance(c, bool):
            return f"coefficient {i} is {c!r}, not a number"
        if not math.isfinite(c) or not low < c <= high:
            return (f"coefficient {i} is {c!r}; every coefficient must be a finite number in "
                    f"({low:g}, {high:g}] (1: the skip unchanged)")
    return None


def check_coefficients(values: Sequence, n_skips: int | None = None) -> None:
    """Raise ValueError with ``coefficient_problem``'s reason if the coefficients are unusable."""
    problem = coefficient_problem(values, n_skips)
    if problem is not None:
        raise ValueError(problem)


def guidance_problem(value: object) -> str | None:
    """Why ``value`` is not a guidance weight (a finite number >= 1, or None); None if it is."""
    if value is None:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool) \
            or not math.isfinite(value) or value < 1.0:
        return (f"guidance_scale is {value!r}; it must be a finite number >= 1 "
                "(1: no guidance)")
    return None


def freeu_problem(factors: object) -> str | None:
    """Why ``factors`` are not FreeU's b1, b2 (> 0) and s1, s2 (>= 0); None if they are."""
    if factors is None:
        return None
    if not isinstance(factors, Mapping) or sorted(factors) != sorted(FREEU_KEYS):
        return f"freeu is {factors!r}; it must map each of {', '.join(FREEU_KEYS)} to a number"
    for key in FREEU_KEYS:
        value = factors[key]
        if not isinstance(value, numbers.Real) or isinstance(value, bool) \
                or not math.isfinite(value) or value < 0 or (key[0] == "b" and value == 0):
            return (f"freeu.{key} is {value!r}; backbone factors b must be finite and > 0, "
                    "skip factors s finite and >= 0 (1: unchanged)")
    return None


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
    """Coefficients rho_i for every skip (index 0 next to the bottleneck) and where they apply.

    ``window`` = (sigma_lo, sigma_hi) limits the tuning to noise levels in that closed range;
    ``profile`` blends between 1.0 and the coefficients across ``profile_range`` in log sigma:
    ``rising`` applies them fully at the highest noise and not at all at the lowest, ``falling``
    the reverse, ``constant`` everywhere. ``rising_time`` and ``falling_time`` do the same
    linearly in EDM's time t = sigma, so the effective rho is linear in time (Ma et al. 2024).
    ``guidance_scale`` is the classifier-free guidance weight the schedule was found with (None:
    the model's own); ``freeu`` holds FreeU's factors ``b1, b2, s1, s2`` where FreeU was searched
    with the coefficients or instead of them (None: no FreeU).
    """

    coefficients: tuple[float, ...]
    parameterization: str = "per_skip"
    params: Mapping[str, float] = field(default_factory=dict)
    window: tuple[float, float] | None = None
    profile: str = "constant"
    profile_range: tuple[float, float] = (0.002, 80.0)
    guidance_scale: float | None = None
    freeu: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of "
                             f"{', '.join(PROFILES)}")
        if self.window is not None and not 0 <= self.window[0] <= self.window[1]:
            raise ValueError(f"window {self.window} must satisfy 0 <= sigma_lo <= sigma_hi")
        problem = guidance_problem(self.guidance_scale) or freeu_problem(self.freeu)
        if problem is not None:
            raise ValueError(problem)

    @property
    def depends_on_sigma(self) -> bool:
        """True when the effective coefficients change with the noise level."""
        return self.window is not None or self.profile != "constant"

    def noise_weight(self, sigma: float) -> float:
        """How much of the schedule applies at ``sigma``: 0 (identity) to 1 (full)."""
        if self.window is not None and not self.window[0] <= sigma <= self.window[1]:
            return 0.0
        if self.profile == "constant":
            return 1.0
        if self.profile in TIME_PROFILES:
            (lo, hi), x = self.profile_range, sigma
        else:
            lo, hi = (math.log(v) for v in self.profile_range)
            x = math.log(max(sigma, 1e-12))
        t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
        return t if self.profile in ("rising", "rising_time") else 1.0 - t

    def at_sigma(self, sigma: float) -> tuple[float, ...]:
        """Effective coefficients at noise level ``sigma``: 1 + w(sigma) (rho_i - 1)."""
        w = self.noise_weight(sigma)
        return tuple(1.0 + w * (c - 1.0) for c in self.coefficients)

    @classmethod
    def from_params(cls, parameterization: str, params: Mapping[str, float],
                    levels: Sequence[int], **where) -> SkipSchedule:
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
        return cls(tuple(float(c) for c in coeffs), parameterization, used, **where)

    @classmethod
    def identity(cls, k: int) -> SkipSchedule:
        """All coefficients 1.0: the un-tuned model."""
        return cls((1.0,) * k, "per_skip", {skip_param(i): 1.0 for i in range(k)})

    @property
    def is_identity(self) -> bool:
        """True when every coefficient is exactly 1.0 and no FreeU factor applies."""
        return all(c == 1.0 for c in self.coefficients) and not self.uses_freeu

    @property
    def uses_freeu(self) -> bool:
        """True when FreeU factors are set and one of them is not 1.0."""
        return self.freeu is not None and any(v != 1.0 for v in self.freeu.values())

    def to_dict(self) -> dict:
        """A YAML/JSON-friendly dict (``guidance_scale`` and ``freeu`` only where set)."""
        out = {"parameterization": self.parameterization, "params": dict(self.params),
               "coefficients": list(self.coefficients),
               "window": list(self.window) if self.window is not None else None,
               "profile": self.profile, "profile_range": list(self.profile_range)}
        if self.guidance_scale is not None:
            out["guidance_scale"] = self.guidance_scale
        if self.freeu is not None:
            out["freeu"] = dict(self.freeu)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> SkipSchedule:
        """Inverse of ``to_dict``."""
        window, guidance, freeu = data.get("window"), data.get("guidance_scale"), data.get("freeu")
        return cls(tuple(float(c) for c in data["coefficients"]),
                   str(data.get("parameterization", "per_skip")),
                   {str(k): float(v) for k, v in dict(data.get("params", {})).items()},
                   tuple(float(v) for v in window) if window is not None else None,
                   str(data.get("profile", "constant")),
                   tuple(float(v) for v in data.get("profile_range", (0.002, 80.0))),
                   float(guidance) if guidance is not None else None,
                   {str(k): float(v) for k, v in dict(freeu).items()} if freeu is not None
                   else None)
