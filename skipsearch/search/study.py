"""Study bookkeeping: storage, sampler, create-or-resume, the baseline trials."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError, OperationalError

from ..errors import ConfigError
from .names import OPTUNA_SAMPLERS
from .space import SearchSpace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


JOURNAL = "journal:///"


def make_storage(cfg) -> optuna.storages.BaseStorage:
    """The study storage at ``storage.url``.

    An SQLAlchemy URL (SQLite by default, PostgreSQL for many machines) gives an RDB storage
    with heartbeats, so a killed trial is retried; ``journal:///PATH`` gives Optuna's
    JournalStorage on a file, for processes on one node (no heartbeats).
    """
    url = str(cfg.url)
    if url.startswith(JOURNAL):
        path = Path(url.removeprefix(JOURNAL))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=int(cfg.max_retry))
        settings = {"heartbeat_interval": int(cfg.heartbeat_interval),
                    "grace_period": int(cfg.grace_period),
                    "heartbeat_stale_trial_callback": retry}
        for attempt in range(4):
            try:
                return RDBStorage(url, **settings)
            except (IntegrityError, OperationalError) as err:
                if not creating_at_once(err):
                    raise
                time.sleep(0.5 * (attempt + 1))
        return RDBStorage(url, **settings)


def creating_at_once(err: Exception) -> bool:
    """True for the errors of workers that create a fresh database's schema at the same time.

    One worker's tables or version row appear between another's check and its insert (an
    integrity error, or SQLite's "table ... already exists"), or SQLite's file is locked.
    """
    if isinstance(err, IntegrityError):
        return True
    text = str(err)
    return "already exists" in text or "database is locked" in text


def make_sampler(cfg, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The Optuna sampler named by ``search.sampler``, seeded with ``search.seed``.

    ``search.worker`` (the worker's index) is added to the seed, so parallel workers on one
    study draw different trials.
    """
    seed = int(cfg.seed) + int(cfg.get("worker", 0))
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(cfg.n_startup_trials))
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(int(cfg.grid_points)), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed,
                                                n_startup_trials=int(cfg.n_startup_trials),
                                                warn_independent_sampling=False)
        if cfg.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=int(cfg.n_startup_trials),
                                             warn_independent_sampling=False)
        if cfg.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed,
                                                 population_size=int(cfg.population_size))
    raise ConfigError("search.sampler", cfg.sampler, f"choose one of {', '.join(OPTUNA_SAMPLERS)}")


def open_study(name: str, storage: optuna.storages.BaseStorage,
               sampler: optuna.samplers.BaseSampler, provenance: Mapping[str, object],
               objectives: Sequence[str] = ("fid",),
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study, or resume it when it exists and was run on the same model and metric.

    Every objective (FID, and NFE in multi-objective mode) is minimised.
    """
    directions = ["minimize"] * len(objectives)
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    directions=directions, load_if_exists=True, pruner=pruner)
    except ValueError as err:  # an existing study with other directions
        raise ConfigError("search.objectives", list(objectives),
                          f"study {name} exists with other objectives ({err}); pick a new "
                          "search.study_name") from None
    if len(study.directions) != len(directions):
        raise ConfigError("search.objectives", list(objectives),
                          f"study {name} was run with {len(study.directions)} objective(s); "
                          "pick a new search.study_name or restore search.objectives")
    recorded = study.user_attrs
    for key, value in provenance.items():
        if key in recorded and recorded[key] != value:
            raise ConfigError("search.study_name", name,
                              f"this study was run with {key}={recorded[key]!r}, not {value!r}; "
                              "pick a new search.study_name or restore the original setting")
        if key not in recorded:
            study.set_user_attr(key, value)
    return study


def baseline_key(params: Mapping[str, object]) -> str:
    """What tells baselines apart: the step count and, when searched, sampler and its rho."""
    return "/".join(f"{k}={params[k]}" for k in ("steps", "sampler", "disc_rho") if k in params)


def enqueue_baselines(study: optuna.Study, space: SearchSpace) -> None:
    """Queue one all-1.0 trial per step count (and sampler), unless the study already has it."""
    have = {t.user_attrs.get("baseline_key") for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.FAIL}
    for params in space.baselines():
        key = baseline_key(params)
        if key not in have:
            study.enqueue_trial(params, user_attrs={"baseline": True, "baseline_key": key})


def finished_count(study: optuna.Study) -> int:
    """Trials that completed or were pruned."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))
