"""Confirmation: re-score the top trials at the final sample count on fresh seeds.

A search ranks schedules by FID on one fixed, smallish seed range, and its winner is partly
the schedule that got lucky on those seeds. Before anything is called best, the top-k trials
at each NFE and that NFE's baseline are scored again on ``Protocol.seeds`` (disjoint from the
search seeds). Results are study attributes ``confirm/<n>@<start>/<trial>``, so a resumed or
second worker does not score a trial twice, and both numbers reach the export.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..evaluate import SamplerSpec, evaluate
from ..metrics.fid import FIDScorer
from ..models import LoadedModel
from ..schedule import SkipSchedule
from .group import trial_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    """How final scores are measured: sample count, first seed, FID-infinity or not."""

    n_samples: int
    seed_start: int
    fid_infinity: bool = False

    @property
    def seeds(self) -> range:
        """The seed range of the final score."""
        return range(self.seed_start, self.seed_start + self.n_samples)

    @property
    def prefix(self) -> str:
        """Study attribute prefix of the records made under this protocol."""
        return f"confirm/{self.n_samples}@{self.seed_start}/"


def search_fid(trial: FrozenTrial) -> float:
    """The FID a trial reached during the search (its first objective)."""
    return trial.values[0]


def trial_sampler(study: optuna.Study, trial: FrozenTrial) -> SamplerSpec:
    """The sampler a trial ran (its own record, or the study's for older trials)."""
    data = trial.user_attrs.get("sampler") or study.user_attrs["sampler"]
    return SamplerSpec.from_dict(data, trial_steps(trial))


def trial_schedule(trial: FrozenTrial) -> SkipSchedule:
    """The skip schedule a trial ran, from its record."""
    return SkipSchedule.from_dict(trial.user_attrs["schedule"])


def candidates(study: optuna.Study, top_k: int) -> list[FrozenTrial]:
    """Per NFE, the ``top_k`` completed tuned trials by search FID and the baselines."""
    per_nfe: dict[int, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        per_nfe.setdefault(t.user_attrs["nfe"], []).append(t)
    chosen = []
    for trials in per_nfe.values():
        trials.sort(key=search_fid)
        tuned = [t for t in trials if not t.user_attrs.get("baseline")][:top_k]
        chosen += tuned + [t for t in trials if t.user_attrs.get("baseline")]
    return sorted(chosen, key=lambda t: t.number)


def confirmed(study: optuna.Study, protocol: Protocol | None) -> dict[int, Mapping]:
    """Trial number -> final-score record made under ``protocol``."""
    if protocol is None:
        return {}
    return {int(key.removeprefix(protocol.prefix)): value
            for key, value in study.user_attrs.items() if key.startswith(protocol.prefix)}


def confirm_top(study: optuna.Study, model: LoadedModel, protocol: Protocol, top_k: int,
                batch_size: int, device: str, scorer: FIDScorer) -> dict[int, Mapping]:
    """Score every candidate not yet scored under ``protocol``; return all records."""
    done = confirmed(study, protocol)
    todo = [t for t in candidates(study, top_k) if t.number not in done]
    if todo:
        log.info("confirming %d trials on %d fresh images each (seeds %d..%d)", len(todo),
                 protocol.n_samples, protocol.seed_start, protocol.seeds[-1])
    for i, trial in enumerate(todo):
        result = evaluate(model, trial_schedule(trial), trial_sampler(study, trial),
                          protocol.seeds, batch_size, device, scorer,
                          fid_infinity=protocol.fid_infinity,
                          desc=f"confirm {i + 1}/{len(todo)} (trial {trial.number})")
        record = {"fid": result.fid, "fid_infinity": result.fid_infinity,
                  "n_samples": protocol.n_samples, "seed_start": protocol.seed_start}
        study.set_user_attr(f"{protocol.prefix}{trial.number}", record)
    return confirmed(study, protocol)
