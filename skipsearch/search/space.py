"""The search space from config: skip coefficients of a parameterization, and sampler steps."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import optuna

from ..configuration.errors import ConfigError, check
from ..samplers.spec import SamplerSpec
from ..tuning.schedule import SkipSchedule, param_names

# The most points a grid search may list (Optuna's GridSampler holds them all in memory).
MAX_GRID = 1_000_000


@dataclass(frozen=True)
class Bounds:
    """A closed interval for one coefficient."""

    low: float
    high: float


@dataclass(frozen=True)
class SearchSpace:
    """Bounds per schedule parameter, step counts, and optionally a noise window and profile.

    Each (solver, step count) is a cell of the sweep, searched as a study of its own
    (``cells``); within a cell the step count and the solver are fixed. ``window`` (bounds on
    sigma) adds ``sigma_lo`` and ``sigma_hi`` (log-uniform; the window is their sorted pair);
    ``profiles`` with several entries adds a categorical ``profile``; ``samplers`` with
    several entries gives a cell per solver; ``disc_rho`` adds the rho of EDM's
    discretization; ``guidance`` adds ``guidance_scale``, the classifier-free guidance weight
    (the baselines keep ``baseline_guidance``, the model's own); ``freeu`` adds FreeU's four
    factors (its baseline: all 1, no FreeU). Without ``bounds`` the coefficients stay 1.
    """

    parameterization: str
    bounds: Mapping[str, Bounds]
    steps: tuple[int, ...]
    levels: tuple[int, ...]
    window: Bounds | None = None
    profiles: tuple[str, ...] = ("constant",)
    profile_range: tuple[float, float] = (0.002, 80.0)
    samplers: Mapping[str, SamplerSpec] = field(default_factory=dict)
    disc_rho: Bounds | None = None
    guidance: Bounds | None = None
    baseline_guidance: float = 1.0
    freeu: Mapping[str, Bounds] | None = None  # FreeU's factors, searched (b1, b2, s1, s2)

    @property
    def searched_bounds(self) -> dict[str, Bounds]:
        """The coefficients' bounds and FreeU's factors' (each a float parameter from 1.0)."""
        return {**self.bounds, **(self.freeu or {})}

    def cells(self) -> list[SamplerSpec]:
        """The sweep's cells: every solver at every step count, by solver then steps."""
        return [replace(spec, steps=int(steps)) for spec in self.samplers.values()
                for steps in self.steps]

    def suggest(self, trial: optuna.Trial,
                cell: SamplerSpec) -> tuple[SkipSchedule, SamplerSpec]:
        """Ask the trial for every parameter of ``cell``; return the schedule and the sampler.

        A queued trial may hold values outside the bounds on purpose (the baseline's rho = 1,
        a neighbour's best): Optuna's warning about that is not shown.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Fixed parameter .* is out of range",
                                    UserWarning)
            return self._suggest(trial, cell)

    def _suggest(self, trial: optuna.Trial,
                 cell: SamplerSpec) -> tuple[SkipSchedule, SamplerSpec]:
        params = {name: trial.suggest_float(name, b.low, b.high)
                  for name, b in self.bounds.items()}
        freeu = None
        if self.freeu is not None:
            freeu = {name: trial.suggest_float(name, b.low, b.high)
                     for name, b in self.freeu.items()}
        sampler = cell
        if self.disc_rho is not None:
            rho = trial.suggest_float("disc_rho", self.disc_rho.low, self.disc_rho.high)
            sampler = replace(sampler, rho=rho)
        window = None
        if self.window is not None:
            ends = [trial.suggest_float(name, self.window.low, self.window.high, log=True)
                    for name in ("sigma_lo", "sigma_hi")]
            window = (min(ends), max(ends))
        profile = self.profiles[0]
        if len(self.profiles) > 1:
            profile = trial.suggest_categorical("profile", list(self.profiles))
        guidance = None
        if self.guidance is not None:
            guidance = trial.suggest_float("guidance_scale", self.guidance.low,
                                           self.guidance.high)
        where = {"window": window, "profile": profile, "profile_range": self.profile_range,
                 "guidance_scale": guidance, "freeu": freeu}
        if not self.bounds:  # FreeU alone: every skip as it is
            return SkipSchedule((1.0,) * len(self.levels), self.parameterization, {},
                                **where), sampler
        return SkipSchedule.from_params(self.parameterization, params, self.levels,
                                        **where), sampler

    def distributions(self) -> dict[str, list]:
        """Every searched parameter as [low, high] or its list of choices (JSON-friendly)."""
        out: dict[str, list] = {name: [b.low, b.high]
                                for name, b in self.searched_bounds.items()}
        if self.disc_rho is not None:
            out["disc_rho"] = [self.disc_rho.low, self.disc_rho.high]
        if self.window is not None:
            out.update(sigma_lo=[self.window.low, self.window.high],
                       sigma_hi=[self.window.low, self.window.high])
        if len(self.profiles) > 1:
            out["profile"] = list(self.profiles)
        if self.guidance is not None:
            out["guidance_scale"] = [self.guidance.low, self.guidance.high]
        return out

    def with_ranges(self, ranges: Mapping[str, list]) -> SearchSpace:
        """This space with the numeric ranges of ``ranges`` (as ``distributions`` gives them)."""
        def bounds(name: str, old: Bounds | None) -> Bounds | None:
            return Bounds(*map(float, ranges[name])) if name in ranges and old else old

        window = self.window
        if window is not None and "sigma_lo" in ranges:
            window = Bounds(min(ranges["sigma_lo"][0], ranges["sigma_hi"][0]),
                            max(ranges["sigma_lo"][1], ranges["sigma_hi"][1]))
        freeu = None if self.freeu is None else \
            {n: bounds(n, b) for n, b in self.freeu.items()}
        return replace(self, bounds={n: bounds(n, b) for n, b in self.bounds.items()},
                       window=window, disc_rho=bounds("disc_rho", self.disc_rho),
                       guidance=bounds("guidance_scale", self.guidance), freeu=freeu)

    def check_grid(self, points: int) -> None:
        """ConfigError when a grid of ``points`` per parameter holds more than ``MAX_GRID``."""
        axes = (len(self.bounds) + 2 * (self.window is not None) + (self.disc_rho is not None)
                + (self.guidance is not None) + len(self.freeu or {}))
        size = points ** axes * max(len(self.profiles), 1)
        check(size <= MAX_GRID, "search.grid_points", points,
              f"makes a grid of {size:.3g} points over {axes} parameters, more than "
              f"{MAX_GRID:.0e}; take fewer points per parameter or search=tpe")

    def grid(self, points: int) -> dict[str, list]:
        """A grid over the space: ``points`` values per coefficient (log-spaced for sigmas).

        ConfigError when it would hold more than ``MAX_GRID`` points (Optuna lists them all).
        """
        self.check_grid(points)
        grid: dict[str, list] = {name: np.linspace(b.low, b.high, points).tolist()
                                 for name, b in self.searched_bounds.items()}
        if self.window is not None:
            ends = np.geomspace(self.window.low, self.window.high, points).tolist()
            grid.update(sigma_lo=ends, sigma_hi=ends)
        if len(self.profiles) > 1:
            grid["profile"] = list(self.profiles)
        for name, b in (("disc_rho", self.disc_rho), ("guidance_scale", self.guidance)):
            if b is not None:
                grid[name] = np.linspace(b.low, b.high, points).tolist()
        return grid

    def baseline(self, cell: SamplerSpec) -> dict[str, float | str]:
        """The parameters of ``cell``'s baseline: every coefficient 1.0, no window."""
        params: dict[str, float | str] = {name: 1.0
                                          for name in self.searched_bounds}
        if self.window is not None:
            params.update(sigma_lo=self.window.low, sigma_hi=self.window.high)
        if len(self.profiles) > 1:
            params["profile"] = "constant" if "constant" in self.profiles else self.profiles[0]
        if self.disc_rho is not None:
            params["disc_rho"] = cell.rho
        if self.guidance is not None:
            params["guidance_scale"] = self.baseline_guidance
        return params


def build_space(parameterization: str, rho_bounds: Mapping[str, Mapping[str, float]],
                steps: Sequence[int], levels: Sequence[int],
                window: Mapping[str, float] | None = None, profiles: Sequence[str] = (),
                profile_range: tuple[float, float] = (0.002, 80.0),
                samplers: Mapping[str, SamplerSpec] | None = None,
                disc_rho: Mapping[str, float] | None = None,
                guidance: Mapping[str, float] | None = None,
                baseline_guidance: float = 1.0,
                freeu: Mapping[str, Sequence[float]] | None = None,
                tune_skips: bool = True) -> SearchSpace:
    """Bounds for each parameter of the parameterization; ``default`` covers unnamed ones.

    ``freeu`` (a (low, high) per factor) adds FreeU's factors; ``tune_skips=False`` searches
    no coefficient (FreeU alone).
    """
    bounds = {}
    for name in param_names(parameterization, levels) if tune_skips else ():
        raw = rho_bounds.get(name, rho_bounds.get("default"))
        if raw is None:
            raise ConfigError(f"skip.space.{name}", None,
                              "no bounds for this parameter; give skip.space."
                              f"{name}={{low: 0.5, high: 1.0}} or a skip.space.default")
        bounds[name] = Bounds(float(raw["low"]), float(raw["high"]))
    window_bounds = Bounds(float(window["low"]), float(window["high"])) if window else None
    rho_range = Bounds(float(disc_rho["low"]), float(disc_rho["high"])) if disc_rho else None
    weights = Bounds(float(guidance["low"]), float(guidance["high"])) if guidance else None
    factors = {n: Bounds(float(lo), float(hi)) for n, (lo, hi) in freeu.items()} \
        if freeu else None
    return SearchSpace(parameterization, bounds, tuple(int(s) for s in steps), tuple(levels),
                       window_bounds, tuple(profiles) or ("constant",), profile_range,
                       dict(samplers or {}), rho_range, weights, float(baseline_guidance),
                       factors)
