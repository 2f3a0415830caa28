"""The ``skip`` group: the schedule it fixes and the ranges a sweep searches (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import check
from ..configuration.keys import get, get_choice, get_float, get_list
from .schedule import (
    FREEU_KEYS,
    METHODS,
    PARAMETERIZATIONS,
    PROFILES,
    RHO_RANGE,
    SkipSchedule,
    coefficient_problem,
    freeu_problem,
    param_names,
)

Range = tuple[float, float]


@dataclass(frozen=True)
class SkipConfig:
    """Parameterization, fixed coefficients, noise window and profile, and searched ranges.

    ``method`` says what a sweep tunes: the coefficients (``skip_tuning``), FreeU's factors
    (``freeu``: the coefficients stay 1) or both; ``freeu`` holds fixed factors for commands
    without a schedule file, ``freeu_space`` the searched ranges of each factor.
    """

    parameterization: str
    params: Mapping[str, float] = field(default_factory=dict)
    window: Range | None = None
    profile: str = "constant"
    profiles: tuple[str, ...] = ()
    space: Mapping[str, Range] = field(default_factory=dict)
    window_space: Range | None = None
    method: str = "skip_tuning"
    freeu: Mapping[str, float] | None = None
    freeu_space: Mapping[str, Range] = field(default_factory=dict)

    @property
    def tunes_skips(self) -> bool:
        """Whether the sweep searches the skip coefficients."""
        return self.method != "freeu"

    @property
    def tunes_freeu(self) -> bool:
        """Whether the sweep searches FreeU's factors."""
        return "freeu" in self.method

    @classmethod
    def from_config(cls, cfg: DictConfig, searched: bool = False) -> SkipConfig:
        """The checked ``skip`` group; its search ranges too when ``searched``."""
        parameterization = get_choice(cfg, "skip.parameterization", PARAMETERIZATIONS)
        window = get_list(cfg, "skip.window")
        if window is not None:
            ok = (isinstance(window, list) and len(window) == 2
                  and all(isinstance(v, (int, float)) for v in window)
                  and 0 <= window[0] <= window[1])
            check(ok, "skip.window", window,
                  "give [sigma_lo, sigma_hi] with 0 <= lo <= hi, or null")
        profile = get_choice(cfg, "skip.profile", PROFILES)
        profiles = get_list(cfg, "skip.profiles") or []
        for p in profiles:
            check(p in PROFILES, "skip.profiles", list(profiles),
                  f"every profile must be one of: {', '.join(PROFILES)}")
        window_space = None
        if OmegaConf.select(cfg, "skip.window_space") is not None:
            low = get_float(cfg, "skip.window_space.low", 0.0)
            high = get_float(cfg, "skip.window_space.high", 0.0)
            check(low <= high, "skip.window_space", {"low": low, "high": high},
                  "low must not exceed high")
            window_space = (low, high)
        method = get_choice(cfg, "method", METHODS) if OmegaConf.select(cfg, "method") \
            is not None else "skip_tuning"
        factors = fixed_freeu(cfg)  # checked in a sweep too, where it is not used
        config = cls(parameterization, {} if searched else fixed_params(cfg),
                     (float(window[0]), float(window[1])) if window is not None else None,
                     profile, tuple(profiles), window_space=window_space, method=method,
                     freeu=None if searched else factors)
        if not searched:
            return config
        return replace(config, space=space_ranges(cfg) if config.tunes_skips else {},
                       freeu_space=freeu_ranges(cfg) if config.tunes_freeu else {})

    def schedule(self, levels: Sequence[int], profile_range: Range) -> SkipSchedule:
        """The fixed schedule (``default`` fills unnamed parameters, else 1) on ``levels``."""
        given = self.params
        params = {name: float(given.get(name, given.get("default", 1.0)))
                  for name in param_names(self.parameterization, levels)}
        return SkipSchedule.from_params(self.parameterization, params, levels,
                                        window=self.window, profile=self.profile,
                                        profile_range=profile_range, freeu=self.freeu)

    def space_bounds(self) -> dict[str, dict[str, float]]:
        """The searched ranges as ``{name: {low, high}}``."""
        return {name: {"low": low, "high": high} for name, (low, high) in self.space.items()}

    def window_bounds(self) -> dict[str, float] | None:
        """The searched noise window as ``{low, high}``, or None."""
        if self.window_space is None:
            return None
        return {"low": self.window_space[0], "high": self.window_space[1]}


def fixed_freeu(cfg: DictConfig) -> dict[str, float] | None:
    """``freeu.factors``: FreeU's b1, b2, s1, s2 applied without a schedule file, or None."""
    factors = OmegaConf.select(cfg, "freeu.factors")
    if factors is None:
        return None
    given = OmegaConf.to_container(factors) if OmegaConf.is_config(factors) else factors
    problem = freeu_problem(given)
    check(problem is None, "freeu.factors", given,
          f"{problem}; e.g. freeu.factors={{b1: 1.3, b2: 1.4, s1: 0.9, s2: 0.2}}")
    return {k: float(given[k]) for k in FREEU_KEYS}


def freeu_ranges(cfg: DictConfig) -> dict[str, Range]:
    """``freeu.space``: a range per FreeU factor, low <= high, b above 0 and s from 0."""
    ranges = {}
    for name in FREEU_KEYS:
        key = f"freeu.space.{name}"
        check(OmegaConf.select(cfg, key) is not None, key, None,
              f"missing; give {key}={{low: 0.8, high: 1.6}}")
        low = get_float(cfg, f"{key}.low", -1.0 if name[0] == "s" else 0.0, 100.0)
        high = get_float(cfg, f"{key}.high", -1.0 if name[0] == "s" else 0.0, 100.0)
        check(low >= 0, f"{key}.low", low, "must be >= 0 (0 removes the low frequencies)")
        check(low <= high, key, {"low": low, "high": high}, "low must not exceed high")
        ranges[name] = (low, high)
    return ranges


def fixed_params(cfg: DictConfig) -> dict[str, float]:
    """``skip.params``: usable coefficients by parameter name."""
    params = OmegaConf.select(cfg, "skip.params") or {}
    low, high = RHO_RANGE
    for name in params:
        check(coefficient_problem([params[name]]) is None, f"skip.params.{name}", params[name],
              f"every coefficient must be a finite number in ({low:g}, {high:g}] "
              "(1: the skip unchanged)")
    return {str(name): float(params[name]) for name in params}


def space_ranges(cfg: DictConfig) -> dict[str, Range]:
    """``skip.space``: a range in RHO_RANGE, low <= high, per searched parameter."""
    space = get(cfg, "skip.space")
    if cfg.skip.parameterization == "linear" and "default" not in space:
        for name in ("rho_top", "rho_bottom"):
            check(name in space, f"skip.space.{name}", None,
                  f"missing; give +skip.space.{name}={{low:0.5,high:1.0}}")
    ranges = {}
    for name in space:
        key = f"skip.space.{name}"
        low = get_float(cfg, f"{key}.low", *RHO_RANGE)
        high = get_float(cfg, f"{key}.high", *RHO_RANGE)
        check(low <= high, key, {"low": low, "high": high},
              f"low must not exceed high; swap them ({key}.low={high} {key}.high={low})")
        ranges[str(name)] = (low, high)
    return ranges
