"""A study's results: best and baseline per NFE, the Pareto front, confirmed scores (torch-free).

Every query reads trials through ``TrialRecord`` and takes a study or a ``Sweep`` alike.
``scores`` everywhere is ``confirmed(study, protocol)``: trial number -> final-score record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..execution.seed_range import SeedRange
from ..samplers.spec import SamplerSpec
from ..tuning.schedule import SkipSchedule
from .group import Sweep
from .record import CONFIRM_PREFIX, METRIC, SAMPLER, TrialRecord, study_attrs

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


def search_score(trial: FrozenTrial) -> float:
    """The score a trial reached during the search (its first objective)."""
    return trial.values[0]


def higher_is_better(study: optuna.Study | Sweep) -> bool:
    """Whether the study's first objective (the search metric) is maximised."""
    return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE


def ranking(study: optuna.Study | Sweep):
    """A sort key of scores of ``study``'s search metric: smaller is better."""
    sign = -1.0 if higher_is_better(study) else 1.0
    return lambda value: sign * value


def metric_name(study) -> str:
    """The search metric a study recorded (``fid`` for studies that predate the registry)."""
    return str((study_attrs(study).get(METRIC) or {}).get("metric", "fid"))


def metric_label(study) -> str:
    """How tables name the study's search metric."""
    from ..metrics.registry import label

    return label(metric_name(study))


def final_value(record: Mapping) -> float:
    """The search metric's score in a final-score record (``fid`` in older records)."""
    return record["score"] if "score" in record else record["fid"]


def trial_steps(trial: FrozenTrial) -> int:
    """The sampler steps a trial ran (a user attribute; a parameter in studies before cells)."""
    steps = TrialRecord.of(trial).steps
    return int(steps if steps is not None else trial.params.get("steps", 0))


def trial_sampler(study: optuna.Study, trial: FrozenTrial) -> SamplerSpec:
    """The sampler a trial ran (its own record, or the study's for older trials)."""
    data = TrialRecord.of(trial).sampler or study_attrs(study)[SAMPLER]
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
    """The trial's confirmed score if it has one, else its search score."""
    if scores and trial.number in scores:
        return final_value(scores[trial.number])
    return search_score(trial)


def best_per_nfe(study: optuna.Study, scores: Scores | None = None) -> dict[int, FrozenTrial]:
    """The completed trial with the best search-metric score at each NFE.

    With ``scores`` (confirmed final scores by trial number) only those trials compete, ranked
    by their final score; an NFE without any falls back to the search score. A candidate a
    race stopped (scored on fewer images, shown worse than another) never competes.
    """
    key = ranking(study)
    by_search: dict[int, FrozenTrial] = {}
    by_final: dict[int, FrozenTrial] = {}
    for t in completed(study):
        nfe = TrialRecord.of(t).nfe
        if nfe not in by_search or key(search_score(t)) < key(search_score(by_search[nfe])):
            by_search[nfe] = t
        if scores and t.number in scores and "stopped" not in scores[t.number] and (
                nfe not in by_final or key(final_value(scores[t.number]))
                < key(final_value(scores[by_final[nfe].number]))):
            by_final[nfe] = t
    return dict(sorted({**by_search, **by_final}.items()))


def baseline_per_nfe(study: optuna.Study,
                     scores: Scores | None = None) -> dict[int, FrozenTrial]:
    """The completed baseline (all coefficients 1.0) trial at each NFE (the best, if several)."""
    key = ranking(study)
    baselines = [t for t in completed(study) if TrialRecord.of(t).baseline]
    best: dict[int, FrozenTrial] = {}
    for t in sorted(baselines, key=lambda t: key(final_or_search(t, scores)), reverse=True):
        best[TrialRecord.of(t).nfe] = t
    return best


def pareto_front(values: Mapping[int, float], higher_is_better: bool = False) -> list[int]:
    """The NFEs whose score beats the score at every smaller NFE (fewer NFE, better score)."""
    sign = -1.0 if higher_is_better else 1.0
    front, best = [], float("inf")
    for nfe in sorted(values):
        if sign * values[nfe] < best:
            front.append(nfe)
            best = sign * values[nfe]
    return front


def confirmed(study: optuna.Study, protocol: Protocol | None) -> dict[int, Mapping]:
    """Trial number -> final-score record made under ``protocol``."""
    if protocol is None:
        return {}
    return {int(key.removeprefix(protocol.prefix)): value
            for key, value in study_attrs(study).items() if key.startswith(protocol.prefix)}


def final_score(score: float, infinity: float | None, seeds: SeedRange,
                metric: str | None = None) -> dict:
    """A final-score record as confirmation stores it: the scores and the seeds they came from."""
    return {"score": score, "score_infinity": infinity, "metric": metric,
            "n_samples": seeds.count, "seed_start": seeds.start}


def final_infinity(record: Mapping) -> float | None:
    """The FID-infinity of a final-score record (``fid_infinity`` in older records)."""
    return record.get("score_infinity", record.get("fid_infinity"))


def final_seeds(record: Mapping) -> SeedRange:
    """The seeds a final-score record was measured on (inverse of ``final_score``)."""
    return SeedRange(int(record["seed_start"]), int(record["n_samples"]))


def per_cell(study: optuna.Study,
             top_k: int) -> dict[tuple[str, int], tuple[list[FrozenTrial], FrozenTrial | None]]:
    """Per cell: its ``top_k`` completed tuned trials by search score, and its baseline."""
    rank = ranking(study)
    cells: dict[tuple[str, int], list[FrozenTrial]] = {}
    for t in completed(study):
        cells.setdefault(cell_of_trial(t), []).append(t)
    out = {}
    for key, trials in cells.items():
        trials.sort(key=lambda t: rank(search_score(t)))
        tuned = [t for t in trials if not TrialRecord.of(t).baseline][:top_k]
        base = next((t for t in trials if TrialRecord.of(t).baseline), None)
        out[key] = (tuned, base)
    return out


def candidates(study: optuna.Study, top_k: int) -> list[FrozenTrial]:
    """Per cell, the ``top_k`` completed tuned trials by search score and the baseline."""
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
