"""The ``search`` and ``pruner`` groups, checked and typed (torch- and Optuna-free)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import check
from ..configuration.keys import get, get_bool, get_choice, get_float, get_int, get_list
from ..execution.seed_range import SEED_LIMIT
from ..samplers.names import MAX_STEPS, SAMPLER_NAMES
from ..tuning.schedule import RHO_RANGE
from .names import OPTUNA_SAMPLERS, PRUNERS, stage_counts

SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)
# A sweep's name becomes a folder under export_dir and report.dir: letters, digits and ._+=-,
# starting with a letter or digit, at most 100 characters (so never a path or '..').
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}")
NAME_RULE = "1-100 letters, digits and . _ + = -, starting with a letter or digit, no '..' or '/'"


def study_name(cfg: DictConfig) -> str:
    """``search.study_name`` or ``<model>-<sampler>-<what is tuned>``, checked as a name.

    What is tuned: the parameterization (``linear``), ``freeu``, or ``linear+freeu``.
    """
    name = OmegaConf.select(cfg, "search.study_name")
    if name is not None and name != "":
        return checked_study_name(str(name))
    method = OmegaConf.select(cfg, "method") or "skip_tuning"
    tuned = {"skip_tuning": str(cfg.skip.parameterization), "freeu": "freeu"}.get(
        method, f"{cfg.skip.parameterization}+freeu")
    name = f"{cfg.model.name}-{cfg.sampler.name}-{tuned}"
    check(is_study_name(name), "search.study_name", None,
          f"the default name {name!r} (<model.name>-<sampler>-<parameterization>) is not a "
          f"folder name; {NAME_RULE}: set search.study_name=NAME or another model.name")
    return name


def is_study_name(name: str) -> bool:
    """Whether ``name`` is a safe folder name (``STUDY_NAME``, no '..')."""
    return STUDY_NAME.fullmatch(name) is not None and ".." not in name


def checked_study_name(name: str, key: str = "search.study_name") -> str:
    """``name`` if it is a safe folder name; else ConfigError naming ``key``."""
    check(is_study_name(name), key, name, f"a sweep's name is a folder name: {NAME_RULE}")
    return name


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
    race: bool = True
    race_alpha: float = 0.05
    reuse: bool = True
    limit_steps: tuple[int, ...] = ()
    expand_bounds: bool = False
    expand_step: float = 0.25
    bound_limit: Mapping[str, float] | None = None
    max_failures: int = 5
    samplers: tuple[str, ...] | None = None
    disc_rho: Mapping[str, float] | None = None
    guidance_scale: Mapping[str, float] | None = None

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
            extra["grid_points"] = get_int(cfg, "search.grid_points", 2, 1000)
        if sampler == "nsga2":
            extra["population_size"] = get_int(cfg, "search.population_size", 2)
        if OmegaConf.select(cfg, "search.n_startup_trials") is not None:
            extra["n_startup_trials"] = get_int(cfg, "search.n_startup_trials", 0)
        objectives = objective_names(cfg)
        check(len(objectives) == 1 or sampler not in SINGLE_OBJECTIVE_SAMPLERS,
              "search.sampler", sampler, "optimises one objective; use search=nsga2 or "
              "search=tpe with search.objectives=[score,nfe]")
        confirm_top_k = get_int(cfg, "search.confirm_top_k", 0)
        if OmegaConf.select(cfg, "search.confirm_blocks") is not None:
            extra["confirm_blocks"] = confirm_blocks(cfg, confirm_top_k > 0)
        if OmegaConf.select(cfg, "search.max_failures") is not None:
            extra["max_failures"] = get_int(cfg, "search.max_failures", 1)
        expansion = bound_expansion(cfg)  # checked even while expand_bounds is off
        if get_bool(cfg, "search.expand_bounds", default=False):
            extra.update(expand_bounds=True, **expansion)
        return cls(study_name(cfg), step_counts(cfg), tuple(objectives), sampler,
                   get_int(cfg, "search.seed", 0, SEED_LIMIT - 1),
                   get_int(cfg, "search.n_trials", 1), get_int(cfg, "search.worker", 0),
                   warm_start=get_bool(cfg, "search.warm_start", default=False),
                   race=get_bool(cfg, "search.race", default=True),
                   race_alpha=get_float(cfg, "search.race_alpha", 0.0, 0.5)
                   if OmegaConf.select(cfg, "search.race_alpha") is not None else 0.05,
                   reuse=get_bool(cfg, "search.reuse", default=True),
                   confirm_top_k=confirm_top_k, limit_steps=limit_steps(cfg),
                   samplers=searched_samplers(cfg), disc_rho=disc_rho_range(cfg),
                   guidance_scale=guidance_range(cfg), **extra)


def confirm_blocks(cfg: DictConfig, confirming: bool = True) -> int:
    """``search.confirm_blocks``: 2 or more, each with an image, each left out leaving 2 images.

    Block b holds the seeds at positions p with p * blocks // n == b, so the largest holds
    ceil(n / blocks) of the n = metric.final_samples images (checked when ``confirming``).
    """
    blocks = get_int(cfg, "search.confirm_blocks", 2)
    n = OmegaConf.select(cfg, "metric.final_samples")
    check(not confirming or not isinstance(n, int) or (n >= blocks and n - -(-n // blocks) >= 2),
          "search.confirm_blocks", blocks,
          f"cuts metric.final_samples={n} images into blocks of at least one, and each FID "
          "with a block left out needs 2 images; use fewer blocks or more final samples")
    return blocks


def bound_expansion(cfg: DictConfig) -> dict[str, object]:
    """``search.expand_step`` and ``search.bound_limit``, within the coefficients' range."""
    if OmegaConf.select(cfg, "search.bound_limit") is None:
        return {}
    low = get_float(cfg, "search.bound_limit.low", RHO_RANGE[0], RHO_RANGE[1])
    high = get_float(cfg, "search.bound_limit.high", low, RHO_RANGE[1])
    return {"expand_step": get_float(cfg, "search.expand_step", 0.0, 10.0),
            "bound_limit": {"low": low, "high": high}}


def step_counts(cfg: DictConfig) -> tuple[int, ...]:
    """``search.steps``: a non-empty list of integers >= 1."""
    steps = get(cfg, "search.steps")
    check(OmegaConf.is_list(steps) and len(steps) > 0, "search.steps", steps,
          "give a non-empty list of step counts, e.g. search.steps=[4,6,9]")
    for s in steps:
        check(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_STEPS,
              "search.steps", list(steps), f"every step count must be an integer in [1, "
              f"{MAX_STEPS}]")
    return tuple(int(s) for s in steps)


def limit_steps(cfg: DictConfig) -> tuple[int, ...]:
    """``search.limit_steps``: step counts at which the baseline is also scored."""
    values = get_list(cfg, "search.limit_steps")
    if values is None:
        return ()
    check(isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                           and 1 <= v <= MAX_STEPS for v in values),
          "search.limit_steps", values,
          f"give a list of step counts in [1, {MAX_STEPS}], e.g. [10, 18]")
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


# The most guidance a search may try (SD's default is 7.5; beyond a few tens images saturate).
GUIDANCE_LIMIT = 100.0


def guidance_range(cfg: DictConfig) -> dict[str, float] | None:
    """``search.guidance_scale``: a range of the guidance weight holding ``model.guidance_scale``.

    Only models with a guidance weight take one: text-to-image pipelines, the
    class-conditional LDM and U-ViT with a null class (ADM has no guidance), and EDM2 with a
    guiding network (autoguidance).
    """
    from ..models.kinds import GUIDED_KINDS, TEXT_TO_IMAGE_KINDS

    raw = OmegaConf.select(cfg, "search.guidance_scale")
    if raw is None:
        return None
    shown = OmegaConf.to_container(raw) if OmegaConf.is_config(raw) else raw
    kind = OmegaConf.select(cfg, "model.kind")
    check(kind in GUIDED_KINDS, "search.guidance_scale", shown,
          f"model.kind={kind} has no classifier-free guidance; set search.guidance_scale=null")
    if kind == "edm2":
        check(OmegaConf.select(cfg, "model.guide_path") is not None, "search.guidance_scale",
              shown, "autoguidance of an EDM2 model needs a guiding network: set "
              "model.guide_path")
    elif kind not in TEXT_TO_IMAGE_KINDS:
        check(OmegaConf.select(cfg, "model.null_class") is not None, "search.guidance_scale",
              shown, f"guidance of a {kind} model needs its null class: set model.null_class")
    check(OmegaConf.is_dict(raw), "search.guidance_scale", shown,
          "give a range, e.g. search.guidance_scale={low: 1.5, high: 9}, or null")
    low = get_float(cfg, "search.guidance_scale.low", 0.0, GUIDANCE_LIMIT)
    high = get_float(cfg, "search.guidance_scale.high", 0.0, GUIDANCE_LIMIT)
    check(1.0 <= low <= high, "search.guidance_scale", {"low": low, "high": high},
          "needs 1 <= low <= high (1: no guidance)")
    base = get_float(cfg, "model.guidance_scale", 0.0, GUIDANCE_LIMIT)
    check(low <= base <= high, "search.guidance_scale", {"low": low, "high": high},
          f"must contain model.guidance_scale={base:g} (the baselines use it); widen the "
          "range or set model.guidance_scale")
    return {"low": low, "high": high}


def objective_names(cfg: DictConfig) -> tuple[str, ...]:
    """``search.objectives`` with ``score`` read as ``metric.name``: one or two objectives.

    The first is the search metric; a second is another registered metric or ``nfe``.
    """
    from ..metrics.registry import METRICS

    raw = get_list(cfg, "search.objectives")
    search_metric = OmegaConf.select(cfg, "metric.name")
    names = [search_metric if o == "score" else o for o in raw]
    hint = ("give [score] (the search metric), [score,nfe] (a Pareto front against NFE) or "
            "[score,METRIC] (against a second metric)")
    check(len(names) in (1, 2) and all(isinstance(n, str) for n in names),
          "search.objectives", raw, hint)
    check(names[0] == search_metric, "search.objectives", raw,
          f"the first objective is the search metric, metric.name={search_metric}; list it "
          "first (or score), or choose another metric=...")
    if len(names) == 2:
        check(names[1] == "nfe" or names[1] in METRICS, "search.objectives", raw,
              f"{names[1]} is neither nfe nor a registered metric ({', '.join(METRICS)})")
        check(names[1] != names[0], "search.objectives", raw, "names one objective twice")
    return tuple(names)
