"""Study bookkeeping: storage, per-trial seeded samplers, cells created or resumed, baselines."""

from __future__ import annotations

import copy
import hashlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import IntegrityError, OperationalError

from ..configuration.errors import ConfigError
from ..configuration.urls import safe_url
from ..samplers.spec import SamplerSpec
from .clock import timed_storage
from .group import (
    Sweep,
    cell_key,
    cell_study_name,
    group_studies,
    legacy_study,
    load_sweep,
    plain_studies,
    sweep_names,
)
from .names import OPTUNA_SAMPLERS
from .record import (
    CELL,
    GROUP_ATTR,
    METRIC,
    MODEL_NAME,
    MODEL_SHA256,
    NFE,
    PARAMETERIZATION,
    PRECISION,
    SAMPLER,
    SEARCH_N,
    SEARCH_START,
    SKIPS,
    SPACE,
    STEPS,
    TrialRecord,
    set_study_attr,
    study_attrs,
)
from .settings import SearchSettings
from .space import SearchSpace
from .sqlite_storage import LockedSQLiteStorage
from .storage import StorageSettings

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


JOURNAL = "journal:///"
# what a run leaves on its trial; a retry of the trial starts without them
RUN_RECORDS = ("worker", "fail_reason", "stage_scores", "stage_fids", "scores", "n_samples",
               "seconds", "skipped", "duplicate_of")


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a dead worker's trial, queued with what the trial was queued with.

    The failed run's records (its worker, reason and stage FIDs) stay on the failed trial: a
    retry that carried its worker would look like a trial of a dead process once it runs.
    """

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Queue the retry of ``trial`` without its run's records."""
        queued = copy.copy(trial)
        queued.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in RUN_RECORDS}
        super().__call__(study, queued)


def make_storage(cfg: StorageSettings) -> optuna.storages.BaseStorage:
    """The study storage at ``storage.url``.

    An SQLAlchemy URL (SQLite by default, PostgreSQL for many machines) gives an RDB storage
    with heartbeats, so a killed trial is retried (on SQLite, workers take a queued trial
    under a lock file beside the database); ``journal:///PATH`` gives Optuna's
    JournalStorage on a file, for processes on one node (no heartbeats).
    """
    url = str(cfg.url)
    if url.startswith(JOURNAL):
        path = Path(url.removeprefix(JOURNAL))
        path.parent.mkdir(parents=True, exist_ok=True)
        return timed_storage(JournalStorage(JournalFileBackend(str(path))))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryStaleTrial(max_retry=int(cfg.max_retry))
        settings = {"heartbeat_interval": int(cfg.heartbeat_interval),
                    "grace_period": int(cfg.grace_period),
                    "heartbeat_stale_trial_callback": retry}
        kind = LockedSQLiteStorage if url.startswith("sqlite:") else RDBStorage
        for attempt in range(4):
            try:
                return timed_storage(kind(url, **settings))
            except (IntegrityError, OperationalError) as err:
                if not creating_at_once(err):
                    raise
                time.sleep(0.5 * (attempt + 1))
        return timed_storage(kind(url, **settings))


def open_sweep(storage_cfg: StorageSettings, name: str,
               storage: optuna.storages.BaseStorage | None = None) -> Sweep:
    """The sweep ``name`` in the configured storage; a ConfigError naming those there if none.

    ``storage``: that storage, already open (else it is opened here).
    """
    storage = storage or make_storage(storage_cfg)
    try:
        return load_sweep(storage, name)
    except KeyError:
        known = sweep_names(storage)
        there = f"its sweeps: {', '.join(known)}" if known else "it holds no sweep"
        url = safe_url(str(storage_cfg.url))
        if name in plain_studies(storage):
            raise ConfigError("search.study_name", name,
                              f"not a skipsearch sweep: an Optuna study in {url} without the "
                              f"records a sweep writes (model, cells, seeds); {there}") from None
        raise ConfigError("search.study_name", name,
                          f"no such study in {url} ({there}); run "
                          "`skipsearch sweep` with the same overrides first, or name one "
                          "with search.study_name=NAME") from None


def creating_at_once(err: Exception) -> bool:
    """True for the errors of workers that create a fresh database's schema at the same time.

    One worker's tables or version row appear between another's check and its insert (an
    integrity error, or SQLite's "table ... already exists"), or SQLite's file is locked.
    """
    if isinstance(err, IntegrityError):
        return True
    text = str(err)
    return "already exists" in text or "database is locked" in text


def sampler_seed(seed: int, cell: str, number: int) -> int:
    """The seed of trial ``number`` of ``cell``: a hash of the three, in [0, 2**31)."""
    digest = hashlib.sha256(f"{seed}/{cell}/{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A fresh Optuna sampler for every trial, seeded from ``search.seed``, cell and trial number.

    Trial numbers are unique within a study, so a resumed study or a second worker never
    replays a draw (with one seed per process, both drew the same start-up trials again);
    one process on a fresh study draws the same trials every time. Optuna's samplers keep
    what they learn in the storage, so a new instance per trial loses nothing.
    """

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], seed: int,
                 cell: str) -> None:
        self.build, self.seed, self.cell = build, seed, cell
        self.inner = build(sampler_seed(seed, cell, 0))

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Build this trial's sampler."""
        self.inner = self.build(sampler_seed(self.seed, self.cell, trial.number))
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        """Delegated."""
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        """Delegated."""
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        """Delegated."""
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        """Delegated."""
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing: every trial's seed is fixed by its number."""


def make_sampler(search: SearchSettings, space: SearchSpace,
                 cell: str) -> optuna.samplers.BaseSampler:
    """The Optuna sampler named by ``search.sampler`` for one cell, seeded per trial.

    The grid sampler is the exception: one seed per cell fixes its visiting order, and it
    hands out grid points by trial number, so workers and resumes never repeat one either.
    """
    name = str(search.sampler)
    if name not in OPTUNA_SAMPLERS:
        raise ConfigError("search.sampler", name,
                          f"choose one of {', '.join(OPTUNA_SAMPLERS)}")
    if name == "grid":  # its seed orders the grid, which must stay one order for the study
        return build_sampler(search, space, sampler_seed(int(search.seed), cell, 0))
    return TrialSeededSampler(lambda seed: build_sampler(search, space, seed), int(search.seed),
                              cell)


def build_sampler(search: SearchSettings, space: SearchSpace,
                  seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler named by ``search.sampler`` with ``seed``."""
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed,
                                          n_startup_trials=int(search.n_startup_trials))
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(int(search.grid_points)), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if search.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed,
                                                n_startup_trials=int(search.n_startup_trials),
                                                warn_independent_sampling=False)
        if search.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed,
                                             n_startup_trials=int(search.n_startup_trials),
                                             warn_independent_sampling=False)
        return optuna.samplers.NSGAIISampler(seed=seed,
                                             population_size=int(search.population_size))


# The config key a user changes to change each parameter's range or choices.
PARAM_KEYS = {"disc_rho": "search.disc_rho", "sigma_lo": "skip.window_space",
              "sigma_hi": "skip.window_space", "profile": "skip.profiles"}


def check_space(name: str, recorded: Mapping[str, list], wanted: Mapping[str, list]) -> None:
    """A resumed cell keeps its parameters and choices (ranges may differ: see ``merged``).

    Anything else would leave Optuna with two incompatible distributions of one parameter
    (a categorical with other choices fails the first trial), so it is refused up front.
    """
    for param in sorted(set(recorded) | set(wanted)):
        key = PARAM_KEYS.get(param, f"skip.space.{param}")
        old, new = recorded.get(param), wanted.get(param)
        fix = f"restore it, or pick a new search.study_name (study {name})"
        if old is None or new is None:
            raise ConfigError(key, new, f"study {name} was searched "
                              f"{'without' if old is None else 'with'} parameter {param}; "
                              + fix)
        numeric = all(isinstance(v, (int, float)) for v in (*old, *new))
        if not numeric and list(old) != list(new):
            raise ConfigError(key, list(new), f"study {name} was searched over choices "
                              f"{list(old)} of {param}; " + fix)


def merged(recorded: Mapping[str, list] | None, wanted: Mapping[str, list]) -> dict[str, list]:
    """A cell's ranges never shrink: the union of what it searched and what the config asks.

    A widened bound (by hand or by ``search.expand_bounds``) stays wide when the same command
    resumes; choices are the config's (``check_space`` made sure they are the same).
    """
    out = {}
    for param, new in wanted.items():
        old = (recorded or {}).get(param)
        numeric = old is not None and all(isinstance(v, (int, float)) for v in (*old, *new))
        out[param] = [min(old[0], new[0]), max(old[1], new[1])] if numeric else list(new)
    return out


# The setting a user changes to change each recorded value (the rest: search.study_name)
CONFIG_KEYS = {
    SEARCH_N: "metric.n_samples", SEARCH_START: "metric.seed_start", MODEL_NAME: "model",
    MODEL_SHA256: "model", SKIPS: "model", PARAMETERIZATION: "skip",
    **{f"{SAMPLER}.{k}": f"sampler.{k}" for k in ("sigma_min", "sigma_max", "rho", "sigmas")},
    f"{SAMPLER}.name": "sampler", f"{METRIC}.metric": "metric.name",
    f"{METRIC}.feature_extractor": "metric.name", f"{METRIC}.reference": "metric.reference",
    f"{PRECISION}.network": "precision.network", f"{PRECISION}.sampler": "precision.sampler",
    f"{PRECISION}.noise_device": "device",
}


def first_difference(key: str, old: object, new: object) -> tuple[str, object, object]:
    """The dotted path, recorded value and new value of the first entry that differs."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for sub in sorted({*old, *new}):
            if old.get(sub) != new.get(sub):
                return first_difference(f"{key}.{sub}", old.get(sub), new.get(sub))
    return key, old, new


def mismatch(name: str, path: str, old: object, new: object) -> ConfigError:
    """The error for a resumed cell whose recorded ``path`` differs: the setting to restore."""
    setting = CONFIG_KEYS.get(path)
    if setting is None and path.startswith("sampler.options."):
        setting = "sampler." + path.removeprefix("sampler.options.")  # S_churn and the like
    if path.endswith("sha256"):  # a file's content changed: show the hashes, not a path
        old, new = f"sha256 {str(old)[:12]}", f"sha256 {str(new)[:12]}"
    return ConfigError(setting or "search.study_name", new if setting else name,
                       f"study {name} was run with {setting or path}={old!r}; restore it, or "
                       "start another sweep with search.study_name=NEW_NAME")


def check_cell(study: optuna.Study, provenance: Mapping[str, object],
               objectives: Sequence[str], space: Mapping[str, list]) -> None:
    """An existing cell must have the objectives, provenance and space of this run."""
    name = study.study_name
    if len(study.directions) != len(objectives):
        raise ConfigError("search.objectives", list(objectives),
                          f"study {name} was run with {len(study.directions)} objective(s); "
                          "pick a new search.study_name or restore search.objectives")
    recorded = study_attrs(study)
    for key, value in provenance.items():
        if key in recorded and recorded[key] != value:
            raise mismatch(name, *first_difference(key, recorded[key], value))
    if SPACE in recorded:
        check_space(name, recorded[SPACE], space)


def open_cells(group: str, cells: Sequence[SamplerSpec], storage: optuna.storages.BaseStorage,
               space: SearchSpace, search: SearchSettings, provenance: Mapping[str, object],
               objectives: Sequence[str] = ("fid",),  # metric names or nfe
               pruner: optuna.pruners.BasePruner | None = None
               ) -> tuple[list[optuna.Study], list[SearchSpace]]:
    """Create or resume the cell studies of sweep ``group``; each cell's baseline is queued.

    Every existing cell is checked before anything is written, so a refused change of the
    space or the provenance leaves the storage as it was. A new step count is a new cell.
    Returns the cells and the space each searches (its recorded ranges and the config's).
    """
    if legacy_study(storage, group):
        raise ConfigError("search.study_name", group,
                          "this study searched every step count in one study (an older "
                          "skipsearch); pick a new search.study_name to search per cell")
    if group in plain_studies(storage):
        raise ConfigError("search.study_name", group,
                          "the storage holds an Optuna study of this name that is not a "
                          "skipsearch sweep; pick another search.study_name")
    existing = set(group_studies(storage, group))
    distributions = space.distributions()
    names = [cell_study_name(group, cell) for cell in cells]
    loaded = {}
    for name, cell in zip(names, cells, strict=True):
        if name in existing:
            study = optuna.load_study(study_name=name, storage=storage,
                                      sampler=make_sampler(search, space, cell_key(cell)),
                                      pruner=pruner)
            check_cell(study, provenance, objectives, distributions)
            loaded[name] = study
    studies, spaces = [], []
    for name, cell in zip(names, cells, strict=True):
        study, created = loaded.get(name), False
        if study is None:
            study, created = create_cell(name, storage, objectives, pruner,
                                         make_sampler(search, space, cell_key(cell)))
            check_cell(study, provenance, objectives, distributions)
        attrs = study_attrs(study)
        for key, value in {**provenance, GROUP_ATTR: group, CELL: cell.to_dict(),
                           STEPS: cell.steps, NFE: cell.nfe}.items():
            if key not in attrs:
                set_study_attr(study, key, value)
        ranges = merged(attrs.get(SPACE), distributions)
        if attrs.get(SPACE) != ranges:  # new, or a range widened
            set_study_attr(study, SPACE, ranges)
        name_objectives(study, objectives)
        enqueue_baseline(study, space.baseline(cell), cell_key(cell), created)
        studies.append(study)
        spaces.append(space.with_ranges(ranges))
    return studies, spaces


def name_objectives(study: optuna.Study, objectives: Sequence[str]) -> None:
    """Give the study's objectives their metric names (what optuna-dashboard shows), once."""
    if study.metric_names is None and len(objectives) == len(study.directions):
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objectives))


def create_cell(name: str, storage: optuna.storages.BaseStorage, objectives: Sequence[str],
                pruner, sampler) -> tuple[optuna.Study, bool]:
    """A new cell study, or the one another worker created a moment ago (and False)."""
    from ..metrics.registry import direction

    directions = [direction(o) for o in objectives]
    try:
        return optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                   directions=directions, pruner=pruner), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                 pruner=pruner), False


def enqueue_baseline(study: optuna.Study, params: Mapping[str, object], key: str,
                     created: bool) -> None:
    """Queue the cell's all-1.0 trial: by the worker that created the cell, or when none is left.

    Two workers may both queue it after a crash; the second copy is skipped when it starts.
    """
    if not created and any(TrialRecord.of(t).baseline and t.state != TrialState.FAIL
                           for t in study.get_trials(deepcopy=False)):
        return
    study.enqueue_trial(dict(params),
                        user_attrs=TrialRecord(baseline=True, baseline_key=key).to_attrs())
