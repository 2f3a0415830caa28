"""Warm start across NFE: a cell's first draws include the best schedules of its neighbours.

The best coefficients change smoothly with the step count (the paper: the best rho rises
with NFE), so while a cell is in its start-up phase (fewer than ``n_startup`` tuned trials)
the best tuned schedule so far of the nearest smaller and larger step count of the same
solver is queued in it, once each, before the sampler draws anything of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..samplers.spec import SamplerSpec
from .group import cell_label, trial_label
from .record import TrialRecord
from .results import metric_label, ranking
from .space import SearchSpace

log = logging.getLogger(__name__)


def best_tuned(study: optuna.Study) -> FrozenTrial | None:
    """The completed tuned trial of a cell with the best search score."""
    tuned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if not TrialRecord.of(t).baseline]
    rank = ranking(study)
    return min(tuned, key=lambda t: rank(t.values[0])) if tuned else None


def neighbours(cells: Sequence[SamplerSpec], i: int) -> list[int]:
    """The cells of the same solver with the nearest smaller and larger step count."""
    same = [j for j, c in enumerate(cells) if c.name == cells[i].name and j != i]
    below = [j for j in same if cells[j].steps < cells[i].steps]
    above = [j for j in same if cells[j].steps > cells[i].steps]
    return ([max(below, key=lambda j: cells[j].steps)] if below else []) + \
        ([min(above, key=lambda j: cells[j].steps)] if above else [])


def fitted(params: dict, space: SearchSpace) -> dict:
    """The neighbour's parameters that this cell searches, clipped into its bounds."""
    ranges = space.distributions()
    out = {}
    for name, value in params.items():
        choices = ranges.get(name)
        if choices is None:
            continue
        if isinstance(value, str):
            if value in choices:
                out[name] = value
        else:
            out[name] = min(max(float(value), choices[0]), choices[1])
    return out


def warm_start(studies: Sequence[optuna.Study], cells: Sequence[SamplerSpec], i: int,
               space: SearchSpace, n_startup: int, target: int) -> int:
    """Queue the neighbours' best schedules in cell ``i`` during its start-up; the count queued.

    Never more than the cell's free places up to ``target`` trials.
    """
    study = studies[i]
    trials = study.get_trials(deepcopy=False)
    taken = [t for t in trials if t.state != TrialState.FAIL]
    tuned = [t for t in taken if not TrialRecord.of(t).baseline]
    if len(tuned) >= n_startup:
        return 0
    sources = {TrialRecord.of(t).warm_start_from for t in trials}
    queued = 0
    for j in neighbours(cells, i):
        best = best_tuned(studies[j])
        if best is None:
            continue
        source = f"{studies[j].study_name}#{best.number}"
        if source in sources or len(taken) + queued >= target:
            continue
        params = fitted(best.params, space)
        if any(t.params == params for t in taken):
            continue  # the cell ran it already (it came from here)
        study.enqueue_trial(params, user_attrs=TrialRecord(warm_start_from=source).to_attrs())
        log.info("%s: queued the best schedule so far of %s (trial %s, %s %.4f)",
                 cell_label(study), cell_label(studies[j]), trial_label(studies[j], best),
                 metric_label(study), best.values[0])
        queued += 1
    return queued
