"""A study as plain rows for the report: one per trial, and the parameter importances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from ..search.group import Sweep, cell_label, trial_label
from ..search.record import TrialRecord
from ..search.results import final_value


@dataclass(frozen=True)
class TrialRow:
    """One trial: its state, NFE, parameters and the last search-metric score it reported.

    ``final_score`` is its confirmed score on the search metric, where it was confirmed.
    """

    number: int
    state: str
    nfe: int | None
    params: dict
    score: float | None
    n_samples: int | None
    baseline: bool
    final_score: float | None
    label: str = ""  # its cell and number there, as logs and W&B name it

    @property
    def complete(self) -> bool:
        """True for a trial that ran to the end."""
        return self.state == TrialState.COMPLETE.name

    @property
    def pruned(self) -> bool:
        """True for a trial the pruner stopped early."""
        return self.state == TrialState.PRUNED.name


def last_score(trial: FrozenTrial) -> float | None:
    """The search score of a finished trial, else the score at its last stage (pruned)."""
    if trial.values:
        return float(trial.values[0])
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None


def trial_rows(study: Sweep,
               scores: Mapping[int, Mapping] | None = None) -> list[TrialRow]:
    """Every trial of the study in number order; ``final_score`` where it was confirmed."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.of(t)
        nfe, n = record.nfe, record.n_samples
        final = (scores or {}).get(t.number)
        rows.append(TrialRow(t.number, t.state.name, int(nfe) if nfe is not None else None,
                             dict(t.params), last_score(t),
                             int(n) if n is not None else None, bool(record.baseline),
                             float(final_value(final)) if final else None,
                             trial_label(study, t)))
    return sorted(rows, key=lambda r: r.number)


def param_bounds(study: Sweep) -> dict[str, tuple[float, float]]:
    """(low, high) of every float parameter over the distributions of the study's trials."""
    bounds: dict[str, tuple[float, float]] = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if isinstance(dist, FloatDistribution):
                low, high = bounds.get(name, (dist.low, dist.high))
                bounds[name] = (min(low, dist.low), max(high, dist.high))
    return bounds


def cell_importances(study: optuna.Study) -> tuple[dict[str, float] | None, str | None]:
    """fANOVA importances of one cell's parameters for its search score, or None and why not."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, (f"parameter importances need at least 2 completed trials; this cell "
                      f"has {len(complete)}")
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        importances = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=lambda t: t.values[0])
    except Exception as err:  # optuna refuses e.g. a space with a single point
        return None, f"optuna could not compute parameter importances: {err}"
    if not importances:
        return None, "no parameter varies across the completed trials"
    return {k: float(v) for k, v in importances.items()}, None


def param_importances(sweep: Sweep) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Per cell (by its label), fANOVA importances, or the reason they are missing.

    Within a cell the step count is fixed, so the importances say which coefficient matters
    at that NFE (over all cells the step count dominates and says nothing).
    """
    found, missing = {}, {}
    for cell in sweep.cells:
        importances, reason = cell_importances(cell)
        if importances is None:
            missing[cell_label(cell)] = str(reason)
        else:
            found[cell_label(cell)] = importances
    return found, missing
