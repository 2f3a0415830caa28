"""A trial's record and a study's attributes: the one place their keys are spelled (torch-free).

A trial's are Optuna user attributes. ``TrialRecord`` owns them: its fields are the keys,
``write`` stores the fields that are set, ``TrialRecord.of`` reads them back. The study-level
keys (a cell's provenance and bookkeeping, the prefixes of the confirmation and limit records)
are the constants below; ``study_attrs`` reads them and ``set_study_attr`` writes them. Only
the few keys in ``SHOWN`` are user attributes (what ``optuna studies`` and optuna-dashboard's
study page list); the rest are system attributes under ``SYSTEM_PREFIX``. Studies written
before either rule load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import optuna

from ..execution.seed_range import SeedRange

# A cell study's attributes: what its scores depend on (checked on resume) ...
VERSION = "skipsearch_version"
MODEL_NAME = "model_name"
MODEL_SHA256 = "model_sha256"
SAMPLER = "sampler"
PARAMETERIZATION = "parameterization"
METHOD = "method"  # what the sweep tunes: skip_tuning, freeu or skip_tuning+freeu
GUIDANCE = "guidance_scale"  # the model's guidance weight, the baselines' (guided models only)
SKIPS = "skips"
METRIC = "metric"
PRECISION = "precision"
SEARCH_N = "n_samples"  # the search score's image count ...
SEARCH_START = "seed_start"  # ... and its first seed
# ... and its place in the sweep
GROUP_ATTR = "sweep"
CELL = "cell"
STEPS = "steps"
NFE = "nfe"
SPACE = "space"  # the ranges searched (they may widen)
EXPORTS = "exports"  # the folder the last export of the sweep wrote (absolute)
# Prefixes of the records kept as study attributes, one per trial or cell and protocol
CONFIRM_PREFIX = "confirm/"
LIMIT_PREFIX = "limit/"
SCORES_PREFIX = "scores/"  # scores kept for reuse, by the digest of what they depend on

# The study keys kept as user attributes, where Optuna's tools list them; the others (the
# provenance's details, the space, the records) are system attributes under SYSTEM_PREFIX.
SHOWN = frozenset({VERSION, MODEL_NAME, GROUP_ATTR, STEPS, NFE})
SYSTEM_PREFIX = "skipsearch:"


def study_attrs(study) -> dict:
    """Every skipsearch attribute of a study (a cell, a frozen one or a ``Sweep``), by key.

    Older studies kept everything as user attributes; a system attribute wins over them.
    """
    if isinstance(study, optuna.Study):
        # Optuna has no public reader of a live study's system attributes.
        stored = study._storage.get_study_system_attrs(study._study_id)
    elif hasattr(study, "system_attrs"):  # a FrozenStudy, as get_all_studies lists them
        stored = study.system_attrs
    else:
        return study.attrs
    attrs = dict(study.user_attrs)
    attrs.update({k[len(SYSTEM_PREFIX):]: v for k, v in stored.items()
                  if k.startswith(SYSTEM_PREFIX)})
    return attrs


def set_study_attr(study, key: str, value: object) -> None:
    """Store one attribute of a study (a cell or a ``Sweep``): shown, or a system attribute."""
    if not isinstance(study, optuna.Study):
        study.set_attr(key, value)
    elif key in SHOWN:
        study.set_user_attr(key, value)
    else:
        study._storage.set_study_system_attr(study._study_id, SYSTEM_PREFIX + key, value)


@dataclass(frozen=True)
class TrialRecord:
    """What one trial ran and how it went; each field is the user attribute of its name.

    ``None`` (``False`` for ``baseline``) means the attribute is not set.
    """

    nfe: int | None = None  # network evaluations of the trial's sampler
    steps: int | None = None  # its step count
    sampler: dict | None = None  # SamplerSpec.to_dict()
    coefficients: list[float] | None = None  # one rho per skip
    schedule: dict | None = None  # SkipSchedule.to_dict()
    stage_scores: list[list[float]] | None = None  # [images, score] at each stage reached
    stage_fids: list[list[float]] | None = None  # the same, as trials before 0.2 kept it
    scores: dict | None = None  # every objective metric's score, by name (two metrics)
    n_samples: int | None = None  # images the last FID was measured on
    seconds: float | None = None  # wall time up to the last stage
    baseline: bool = False  # the all-1.0 trial queued in each cell
    baseline_key: str | None = None  # the cell of a queued baseline (one runs per cell)
    warm_start_from: str | None = None  # "<cell study>#<trial>" a warm start copied
    fail_reason: str | None = None  # why a trial failed (non-finite images, Ctrl-C)
    skipped: str | None = None  # why a trial never ran (surplus, duplicate)
    duplicate_of: int | None = None  # the trial holding the same parameters
    worker: dict | None = None  # the process running it: host, pid, start (search/workers.py)
    reused: str | None = None  # the digest of the stored score a trial took (no images made)

    @classmethod
    def of(cls, trial) -> TrialRecord:
        """The record of an Optuna trial (frozen or running); keys it lacks stay unset."""
        attrs = trial.user_attrs
        return cls(**{f.name: attrs[f.name] for f in fields(cls) if f.name in attrs})

    @property
    def stages(self) -> list[list[float]]:
        """[images, score] at each stage the trial reached (either name), [] if none."""
        return self.stage_scores or self.stage_fids or []

    def to_attrs(self) -> dict[str, object]:
        """The user attributes this record sets, in field order."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in values.items() if v is not None and v is not False}


def write(trial, record: TrialRecord) -> None:
    """Store the fields ``record`` sets as user attributes of the running ``trial``."""
    for key, value in record.to_attrs().items():
        trial.set_user_attr(key, value)


def search_seeds(attrs: Mapping, n_samples: object = None) -> SeedRange | None:
    """The search's seeds in a study's attributes (``n_samples`` of them if given), or None."""
    start = attrs.get(SEARCH_START)
    count = attrs.get(SEARCH_N) if n_samples is None else n_samples
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, count)) \
            or start < 0 or count < 1:
        return None
    return SeedRange(start, count)
