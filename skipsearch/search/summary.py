"""The end-of-sweep table: baseline and best FID per NFE, the Pareto front, best parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna

from ..export import baseline_per_nfe, best_per_nfe, final_or_search, pareto_front
from ..tracking import StudySummary
from .confirm import search_fid
from .group import trial_steps


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
        rows.append(SummaryRow(nfe, trial_steps(t),
                               final_or_search(base, scores) if base else None, fids[nfe],
                               search_fid(t), bool(scores) and t.number in scores,
                               nfe in front, t.number, params, t.user_attrs["coefficients"]))
    return rows


def study_tables(study: optuna.Study, rows: list[SummaryRow],
                 exports: Path | None) -> StudySummary:
    """Every trial as a table row, and the front, for the study's tracking run."""
    names = sorted({k for t in study.trials for k in t.params})
    columns = ["trial", "state", "nfe", "fid", "n_samples", "baseline", *names]
    trials = [[t.number, t.state.name, t.user_attrs.get("nfe"),
               t.values[0] if t.values else None, t.user_attrs.get("n_samples"),
               bool(t.user_attrs.get("baseline")), *(t.params.get(k) for k in names)]
              for t in study.trials]
    front = [[r.nfe, r.best_fid, r.baseline_fid, r.search_fid, r.best_trial, r.confirmed]
             for r in rows if r.on_front]
    return StudySummary(columns, trials, ["nfe", "fid", "baseline_fid", "search_fid", "trial",
                                          "confirmed"], front, exports)
