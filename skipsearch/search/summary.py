"""The end-of-sweep table: baseline and best FID per NFE, the Pareto front, best parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import optuna

from ..export import baseline_per_nfe, best_per_nfe, final_or_search, pareto_front
from .confirm import search_fid


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
        rows.append(SummaryRow(nfe, t.params["steps"],
                               final_or_search(base, scores) if base else None, fids[nfe],
                               search_fid(t), bool(scores) and t.number in scores,
                               nfe in front, t.number, params, t.user_attrs["coefficients"]))
    return rows
