"""A study's results: best and baseline per NFE, the Pareto front, confirmed scores (torch-free).

Every query reads trials through ``TrialRecord`` and takes a study or a ``Sweep`` alike.
``scores`` everywhere is ``confirmed(study, protocol)``: trial number -> final-score record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..samplers.spec import SamplerSpec
from ..schedule import SkipSchedule
from ..seed_range import SeedRange
from .group import Sweep
from .record import CONFIRM_PREFIX, SAMPLER, TrialRecord

Scores = Mapping[int, Mapping]


@dataclass(frozen=True)
class Protocol:
    """How final scores are measured: on which seeds, and FID-infinity or not."""

    seed_range: SeedRange
    fid_infinity: bool = False

    @property
    def seeds(self) -> range:
        """The seeds of the final score."""
        return self.seed_range.seeds

    @property
    def prefix(self) -> str:
        """Study attribute prefix of the records made under this protocol."""
        return f"{CONFIRM_PREFIX}{self.seed_range.count}@{self.seed_range.start}/"


def search_fid(trial: FrozenTrial) -> float:
    """The FID a trial reached during the search (its first objective)."""
    return trial.values[0]


def trial_steps(trial: FrozenTrial) -> int:
    """The sampler steps a trial ran (a user attribute; a parameter in studies before cells)."""
    steps = TrialRecord.of(trial).steps
    return int(steps if steps is not None else trial.params.get("steps", 0))


def trial_sampler(study: optuna.Study, trial: FrozenTrial) -> SamplerSpec:
    """The sampler a trial ran (its own record, or the study's for older trials)."""
    data = TrialRecord.of(trial).sampler or study.user_attrs[SAMPLER]
    return SamplerSpec.from_dict(data, trial_steps(trial))


def trial_schedule(trial: FrozenTrial) -> SkipSchedule:
    """The skip schedule a trial ran, from its record."""
    return SkipSchedule.from_dict(TrialRecord.of(trial).schedule)


def cell_of_trial(trial: FrozenTrial) -> tuple[str, int]:
    """The (solver, steps) cell a trial ran in."""
    return (str((TrialRecord.of(trial).sampler or {}).get("name", "")), trial_steps(trial))


def completed(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that ran to the end."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def final_or_search(trial: FrozenTrial, scores: Scores | None) -> float:
    """The trial's confirmed FID if it has one, else its search FID."""
    if scores and trial.number in scores:
        return scores[trial.number]["fid"]
    return search_fid(trial)


def best_per_nfe(study: optuna.Study, scores: Scores | None = None) -> dict[int, FrozenTrial]:
    """The completed trial with the lowest FID at each NFE.

    With ``scores`` (confirmed final scores by trial number) only those trials compete, ranked
    by their final FID; an NFE without any falls back to the search FID.
    """
    by_search: dict[int, FrozenTrial] = {}
    by_final: dict[int, FrozenTrial] = {}
    for t in completed(study):
        nfe = TrialRecord.of(t).nfe
        if nfe not in by_search or search_fid(t) < search_fid(by_search[nfe]):
            by_search[nfe] = t
        if scores and t.number in scores and (
                nfe not in by_final
                or scores[t.number]["fid"] < scores[by_final[nfe].number]["fid"]):
            by_final[nfe] = t
    return dict(sorted({**by_search, **by_final}.items()))


def baseline_per_nfe(study: optuna.Study,
                     scores: Scores | None = None) -> dict[int, FrozenTrial]:
    """The completed baseline (all coefficients 1.0) trial at each NFE (the best, if several)."""
    baselines = [t for t in completed(study) if TrialRecord.of(t).baseline]
    best: dict[int, FrozenTrial] = {}
    for t in sorted(baselines, key=lambda t: final_or_search(t, scores), reverse=True):
        best[TrialRecord.of(t).nfe] = t
    return best


def pareto_front(fids: Mapping[int, float]) -> list[int]:
    """The NFEs whose FID is lower than the FID at every smaller NFE (minimising both)."""
    front, best = [], float("inf")
    for nfe in sorted(fids):
        if fids[nfe] < best:
            front.append(nfe)
            best = fids[nfe]
    return front


def confirmed(study: optuna.Study, protocol: Protocol | None) -> dict[int, Mapping]:
    """Trial number -> final-score record made under ``protocol``."""
    if protocol is None:
        return {}
    return {int(key.removeprefix(protocol.prefix)): value
            for key, value in study.user_attrs.items() if key.startswith(protocol.prefix)}


def final_score(fid: float, fid_infinity: float | None, seeds: SeedRange) -> dict:
    """A final-score record as confirmation stores it: the FIDs and the seeds they came from."""
    return {"fid": fid, "fid_infinity": fid_infinity, "n_samples": seeds.count,
            "seed_start": seeds.start}


def final_seeds(record: Mapping) -> SeedRange:
    """The seeds a final-score record was measured on (inverse of ``final_score``)."""
    return SeedRange(int(record["seed_start"]), int(record["n_samples"]))


def per_cell(study: optuna.Study,
             top_k: int) -> dict[tuple[str, int], tuple[list[FrozenTrial], FrozenTrial | None]]:
    """Per cell: its ``top_k`` completed tuned trials by search FID, and its baseline."""
    cells: dict[tuple[str, int], list[FrozenTrial]] = {}
    for t in completed(study):
        cells.setdefault(cell_of_trial(t), []).append(t)
    out = {}
    for key, trials in cells.items():
        trials.sort(key=search_fid)
        tuned = [t for t in trials if not TrialRecord.of(t).baseline][:top_k]
        base = next((t for t in trials if TrialRecord.of(t).baseline), None)
        out[key] = (tuned, base)
    return out


def candidates(study: optuna.Study, top_k: int) -> list[FrozenTrial]:
    """Per cell, the ``top_k`` completed tuned trials by search FID and the baseline."""
    return sorted((t for tuned, base in per_cell(study, top_k).values()
                   for t in [*tuned, *([base] if base is not None else [])]),
                  key=lambda t: t.number)


def cell_of(study, trial: FrozenTrial) -> dict:
    """The cell study holding a sweep's trial and the trial's number there (none for a study)."""
    if not isinstance(study, Sweep):
        return {}
    return {"cell": study.cell_of(trial.number).study_name,
            "cell_trial": study.where(trial.number).number}


def failures_by_reason(study: optuna.Study | Sweep) -> dict[str, int]:
    """Failed trials (skipped ones aside) counted by the kind of failure, most frequent first.

    The kind is a reason's text before its first colon (its numbers follow the colon).
    """
    kinds: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        record = TrialRecord.of(trial)
        if record.skipped is None:
            kind = (record.fail_reason or "no reason recorded").split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda item: -item[1]))
