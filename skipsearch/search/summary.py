"""The end-of-sweep table: baseline and best FID per NFE, the Pareto front, best parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna

from ..tracking import StudySummary
from .bounds import bound_hits, describe
from .record import SPACE, TrialRecord
from .results import (
    baseline_per_nfe,
    best_per_nfe,
    final_or_search,
    pareto_front,
    search_fid,
    trial_steps,
)


@dataclass(frozen=True)
class SummaryRow:
    """One NFE: baseline FID, best FID (confirmed when it was), the best trial and its params."""

    nfe: int
    steps: int
    baseline_fid: float | None
    best_fid: float
    search_fid: float
    confirmed: bool
    on_front: bool
    best_trial: int
    params: dict
    coefficients: list[float]
    delta: float | None = None
    delta_ci95: tuple[float, float] | None = None
    cell: str | None = None
    on_bound: str = ""

    @property
    def significant(self) -> bool | None:
        """Whether the interval of the FID change lies below zero (None: no interval)."""
        return None if self.delta_ci95 is None else self.delta_ci95[1] < 0

    @property
    def change(self) -> float | None:
        """Relative FID change of the best over the baseline (negative is better)."""
        if self.baseline_fid is None or self.baseline_fid == 0:
            return None
        return self.best_fid / self.baseline_fid - 1.0


def summarize(study: optuna.Study,
              scores: Mapping[int, Mapping] | None = None) -> list[SummaryRow]:
    """A row per NFE at which some trial completed."""
    baselines = baseline_per_nfe(study, scores)
    best = best_per_nfe(study, scores)
    fids = {nfe: final_or_search(t, scores) for nfe, t in best.items()}
    front = set(pareto_front(fids))
    rows = []
    for nfe, t in best.items():
        base = baselines.get(nfe)
        params = {k: v for k, v in t.params.items() if k != "steps"}
        record = (scores or {}).get(t.number) or {}
        ci = record.get("delta_ci95")
        rows.append(SummaryRow(nfe, trial_steps(t),
                               final_or_search(base, scores) if base else None, fids[nfe],
                               search_fid(t), bool(scores) and t.number in scores,
                               nfe in front, t.number, params, TrialRecord.of(t).coefficients,
                               record.get("delta"), tuple(ci) if ci else None,
                               cell_name(study, t), bound_note(study, t)))
    return rows


def cell_name(study, trial) -> str | None:
    """The short name of the cell holding ``trial`` (None for a study without cells)."""
    if not hasattr(study, "cell_of"):
        return None
    return study.cell_of(trial.number).study_name.rsplit("/", 1)[-1]


def bound_note(study, trial) -> str:
    """Which of the trial's coefficients lie on a bound of its cell's range (empty if none)."""
    if not hasattr(study, "cell_of"):
        return ""
    ranges = study.cell_of(trial.number).user_attrs.get(SPACE) or {}
    hits = bound_hits(trial.params, ranges)
    return describe(hits, trial.params, ranges) if hits else ""


def fmt_delta(row: SummaryRow) -> str:
    """``-3.21 [-4.02, -2.40]``, with ``n.s.`` when the interval reaches zero; ``-`` if none."""
    if row.delta is None or row.delta_ci95 is None:
        return "-"
    low, high = row.delta_ci95
    return f"{row.delta:+.3f} [{low:+.3f}, {high:+.3f}]" + ("" if row.significant else " n.s.")


def study_tables(study: optuna.Study, rows: list[SummaryRow],
                 exports: Path | None) -> StudySummary:
    """Every trial as a table row, and the front, for the study's tracking run."""
    names = sorted({k for t in study.trials for k in t.params})
    columns = ["trial", "state", "nfe", "fid", "n_samples", "baseline", *names]
    records = [(t, TrialRecord.of(t)) for t in study.trials]
    trials = [[t.number, t.state.name, r.nfe, t.values[0] if t.values else None, r.n_samples,
               r.baseline, *(t.params.get(k) for k in names)] for t, r in records]
    front = [[r.nfe, r.best_fid, r.baseline_fid, r.search_fid, r.best_trial, r.confirmed]
             for r in rows if r.on_front]
    per_nfe = [[r.nfe, r.cell or str(r.steps), r.baseline_fid, r.best_fid, r.change,
                r.delta, *(r.delta_ci95 or (None, None)), r.significant, r.search_fid,
                r.best_trial, r.confirmed, r.on_bound] for r in rows]
    return StudySummary(columns, trials, ["nfe", "fid", "baseline_fid", "search_fid", "trial",
                                          "confirmed"], front, exports,
                        ["nfe", "cell", "baseline_fid", "best_fid", "change", "delta",
                         "delta_ci95_low", "delta_ci95_high", "significant", "search_fid",
                         "trial", "confirmed", "on_bound"], per_nfe)
