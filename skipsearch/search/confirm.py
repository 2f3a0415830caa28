"""Confirmation: re-score the top trials at the final sample count on fresh seeds.

A search ranks schedules by FID on one fixed, smallish seed range, and its winner is partly
the schedule that got lucky on those seeds. Before anything is called best, the top-k trials
of each cell and that cell's baseline are scored again on ``Protocol.seeds`` (disjoint from
the search seeds), and each tuned one gets an interval for its FID change over the baseline
on the same seeds. Results are study attributes ``confirm/<n>@<start>/<trial>``, so a resumed
or second worker does not score a trial twice, and the numbers reach the export.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..samplers.spec import SamplerSpec
from ..schedule import SkipSchedule
from .group import trial_steps

if TYPE_CHECKING:  # the records and queries are read without torch (studies, show, export)
    from ..metrics.fid import FIDScorer
    from ..models import LoadedModel

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


def cell_of_trial(trial: FrozenTrial) -> tuple[str, int]:
    """The (solver, steps) cell a trial ran in."""
    return (str((trial.user_attrs.get("sampler") or {}).get("name", "")), trial_steps(trial))


def candidates(study: optuna.Study, top_k: int) -> list[FrozenTrial]:
    """Per cell, the ``top_k`` completed tuned trials by search FID and the baseline."""
    return sorted((t for tuned, base in per_cell(study, top_k).values()
                   for t in [*tuned, *([base] if base is not None else [])]),
                  key=lambda t: t.number)


def per_cell(study: optuna.Study,
             top_k: int) -> dict[tuple[str, int], tuple[list[FrozenTrial], FrozenTrial | None]]:
    """Per cell: its ``top_k`` completed tuned trials by search FID, and its baseline."""
    cells: dict[tuple[str, int], list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        cells.setdefault(cell_of_trial(t), []).append(t)
    out = {}
    for key, trials in cells.items():
        trials.sort(key=search_fid)
        tuned = [t for t in trials if not t.user_attrs.get("baseline")][:top_k]
        base = next((t for t in trials if t.user_attrs.get("baseline")), None)
        out[key] = (tuned, base)
    return out


def confirmed(study: optuna.Study, protocol: Protocol | None) -> dict[int, Mapping]:
    """Trial number -> final-score record made under ``protocol``."""
    if protocol is None:
        return {}
    return {int(key.removeprefix(protocol.prefix)): value
            for key, value in study.user_attrs.items() if key.startswith(protocol.prefix)}


def confirm_top(study: optuna.Study, model: LoadedModel, protocol: Protocol, top_k: int,
                batch_size: int, device: str, scorer: FIDScorer,
                blocks: int = 10) -> dict[int, Mapping]:
    """Score every candidate not yet scored under ``protocol``; return all records.

    A tuned trial's record also holds FID(tuned) - FID(baseline) on the same seeds and its
    95% jackknife interval over ``blocks`` blocks of seeds (``metrics.blocks``); the block
    sums live in memory only, so a baseline confirmed by an earlier run is scored again when
    a new trial of its cell needs the pairing.
    """
    from ..evaluate import evaluate
    from ..metrics.blocks import paired_delta

    done = confirmed(study, protocol)
    plan = []
    for tuned, base in per_cell(study, top_k).values():
        todo = [t for t in tuned if t.number not in done or
                (base is not None and blocks and "delta" not in done[t.number])]
        if base is not None and (base.number not in done or todo):
            plan.append((base, None, True))
        plan += [(t, base, False) for t in todo]
    if plan:
        log.info("confirming %d trials on %d fresh images each (seeds %d..%d)", len(plan),
                 protocol.n_samples, protocol.seed_start, protocol.seeds[-1])
    sums = {}
    for i, (trial, base, is_base) in enumerate(plan):
        pair = blocks if is_base or (base is not None and base.number in sums) else 0
        result = evaluate(model, trial_schedule(trial), trial_sampler(study, trial),
                          protocol.seeds, batch_size, device, scorer,
                          fid_infinity=protocol.fid_infinity,
                          desc=f"confirm {i + 1}/{len(plan)} (trial {trial.number})",
                          blocks=min(pair, protocol.n_samples))
        record = {"fid": result.fid, "fid_infinity": result.fid_infinity,
                  "n_samples": protocol.n_samples, "seed_start": protocol.seed_start}
        if is_base:
            sums[trial.number] = result.blocks
        elif result.blocks is not None and sums.get(base.number) is not None:
            delta = paired_delta(result.blocks, sums[base.number], scorer.reference)
            record.update(delta.to_dict(), delta_baseline=base.number)
        study.set_user_attr(f"{protocol.prefix}{trial.number}", record)
    return confirmed(study, protocol)
