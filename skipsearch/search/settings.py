"""The ``search`` and ``pruner`` groups, checked and typed (torch- and Optuna-free)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ..errors import check
from ..keys import get, get_choice, get_float, get_int, get_list
from ..samplers.names import SAMPLER_NAMES
from .names import OPTUNA_SAMPLERS, PRUNERS, stage_counts

OBJECTIVES = (["fid"], ["fid", "nfe"])
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)


def study_name(cfg: DictConfig) -> str:
    """``search.study_name`` or ``<model>-<sampler>-<parameterization>``."""
    name = OmegaConf.select(cfg, "search.study_name")
    if name:
        return str(name)
    return f"{cfg.model.name}-{cfg.sampler.name}-{cfg.skip.parameterization}"


@dataclass(frozen=True)
class PrunerSettings:
    """Which pruner stops hopeless trials, and at which sample counts FID is reported."""

    kind: str
    stages: tuple[int, ...]  # sample counts, before the last (metric.n_samples)
    n_startup_trials: int = 0
    reduction_factor: int = 2
    min_early_stopping_rate: int = 0

    @classmethod
    def from_config(cls, cfg: DictConfig, multi_objective: bool = False) -> PrunerSettings:
        """The checked ``pruner`` group; stage fractions become counts of metric.n_samples."""
        kind = get_choice(cfg, "pruner.kind", PRUNERS)
        fractions = get(cfg, "pruner.stages")
        check(OmegaConf.is_list(fractions) and all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < 1
            for f in fractions), "pruner.stages", fractions,
            "give fractions of metric.n_samples in (0, 1), e.g. [0.25,0.5]")
        counts = stage_counts(list(fractions), get_int(cfg, "metric.n_samples", 2))
        check(kind == "none" or not multi_objective, "pruner.kind", kind,
              "Optuna prunes single-objective studies only; use pruner=none with "
              "search.objectives=[fid,nfe]")
        check(kind == "none" or len(fractions) > 0, "pruner.stages", list(fractions),
              f"pruner={kind} needs at least one stage, e.g. pruner.stages=[0.25,0.5]")
        extra = {}
        if kind == "median":
            extra["n_startup_trials"] = get_int(cfg, "pruner.n_startup_trials", 0)
        if kind == "successive_halving":
            extra["reduction_factor"] = get_int(cfg, "pruner.reduction_factor", 2)
            extra["min_early_stopping_rate"] = get_int(cfg, "pruner.min_early_stopping_rate", 0)
        return cls(kind, tuple(counts), **extra)


@dataclass(frozen=True)
class SearchSettings:
    """The sweep: study name, cells, Optuna sampler, trial budget, confirmation, bounds."""

    study_name: str
    steps: tuple[int, ...]
    objectives: tuple[str, ...]
    sampler: str
    seed: int
    n_trials: int
    worker: int = 0
    n_startup_trials: int = 0
    grid_points: int = 7
    population_size: int = 16
    warm_start: bool = False
    confirm_top_k: int = 0
    confirm_blocks: int = 10
    limit_steps: tuple[int, ...] = ()
    expand_bounds: bool = False
    expand_step: float = 0.25
    bound_limit: Mapping[str, float] | None = None
    samplers: tuple[str, ...] | None = None
    disc_rho: Mapping[str, float] | None = None

    @property
    def multi_objective(self) -> bool:
        """Whether the study has a Pareto front of FID against NFE."""
        return len(self.objectives) > 1

    @classmethod
    def from_config(cls, cfg: DictConfig) -> SearchSettings:
        """The checked ``search`` group."""
        sampler = get_choice(cfg, "search.sampler", OPTUNA_SAMPLERS)
        extra: dict[str, object] = {}
        if sampler == "grid":
            extra["grid_points"] = get_int(cfg, "search.grid_points", 2)
        if sampler == "nsga2":
            extra["population_size"] = get_int(cfg, "search.population_size", 2)
        if OmegaConf.select(cfg, "search.n_startup_trials") is not None:
            extra["n_startup_trials"] = get_int(cfg, "search.n_startup_trials", 0)
        objectives = get_list(cfg, "search.objectives")
        check(objectives in OBJECTIVES, "search.objectives", objectives,
              "give [fid] (one objective) or [fid,nfe] (a Pareto front of FID against NFE)")
        check(len(objectives) == 1 or sampler not in SINGLE_OBJECTIVE_SAMPLERS,
              "search.sampler", sampler, "optimises one objective; use search=nsga2 or "
              "search=tpe with search.objectives=[fid,nfe]")
        if OmegaConf.select(cfg, "search.confirm_blocks") is not None:
            extra["confirm_blocks"] = get_int(cfg, "search.confirm_blocks", 2)
        if OmegaConf.select(cfg, "search.expand_bounds"):
            low = get_float(cfg, "search.bound_limit.low", 0.0)
            extra.update(expand_bounds=True,
                         expand_step=get_float(cfg, "search.expand_step", 0.0, 10.0),
                         bound_limit={"low": low,
                                      "high": get_float(cfg, "search.bound_limit.high", low)})
        return cls(study_name(cfg), step_counts(cfg), tuple(objectives), sampler,
                   int(OmegaConf.select(cfg, "search.seed") or 0),
                   get_int(cfg, "search.n_trials", 1), get_int(cfg, "search.worker", 0),
                   warm_start=bool(OmegaConf.select(cfg, "search.warm_start")),
                   confirm_top_k=get_int(cfg, "search.confirm_top_k", 0),
                   limit_steps=limit_steps(cfg), samplers=searched_samplers(cfg),
                   disc_rho=disc_rho_range(cfg), **extra)


def step_counts(cfg: DictConfig) -> tuple[int, ...]:
    """``search.steps``: a non-empty list of integers >= 1."""
    steps = get(cfg, "search.steps")
    check(OmegaConf.is_list(steps) and len(steps) > 0, "search.steps", steps,
          "give a non-empty list of step counts, e.g. search.steps=[4,6,9]")
    for s in steps:
        check(isinstance(s, int) and not isinstance(s, bool) and s >= 1, "search.steps",
              list(steps), "every step count must be an integer >= 1")
    return tuple(int(s) for s in steps)


def limit_steps(cfg: DictConfig) -> tuple[int, ...]:
    """``search.limit_steps``: step counts at which the baseline is also scored."""
    values = get_list(cfg, "search.limit_steps")
    if values is None:
        return ()
    check(isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                           and v >= 1 for v in values),
          "search.limit_steps", values, "give a list of step counts >= 1, e.g. [10, 18]")
    return tuple(values)


def searched_samplers(cfg: DictConfig) -> tuple[str, ...] | None:
    """``search.samplers``: distinct solver names, or None for the ``sampler`` group's."""
    names = get_list(cfg, "search.samplers")
    if names is None:
        return None
    check(isinstance(names, list) and len(names) > 0 and len(set(names)) == len(names)
          and all(n in SAMPLER_NAMES for n in names), "search.samplers", names,
          f"give a list of distinct samplers out of: {', '.join(SAMPLER_NAMES)}; or null")
    return tuple(names)


def disc_rho_range(cfg: DictConfig) -> dict[str, float] | None:
    """``search.disc_rho``: a range of EDM's rho that holds the baselines' ``sampler.rho``."""
    if OmegaConf.select(cfg, "search.disc_rho") is None:
        return None
    check(cfg.sampler.get("discretization", "edm") == "edm", "search.disc_rho",
          OmegaConf.to_container(cfg.search.disc_rho),
          "searches the rho of EDM's discretization; set sampler.discretization=edm "
          "or search.disc_rho=null")
    low = get_float(cfg, "search.disc_rho.low", 0.0)
    high = get_float(cfg, "search.disc_rho.high", 0.0)
    check(low <= float(cfg.sampler.rho) <= high, "search.disc_rho",
          {"low": low, "high": high}, f"must contain sampler.rho={cfg.sampler.rho} "
          "(the baselines use it)")
    return {"low": low, "high": high}
