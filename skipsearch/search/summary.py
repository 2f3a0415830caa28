"""The end-of-sweep table: baseline and best FID per NFE with the best coefficients."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from ..export import baseline_per_nfe, best_per_nfe


@dataclass(frozen=True)
class SummaryRow:
    """One NFE: baseline FID, best FID, the best trial and its parameters."""

    nfe: int
    steps: int
    baseline_fid: float | None
    best_fid: float
    best_trial: int
    params: dict
    coefficients: list[float]

    @property
    def change(self) -> float | None:
        """Relative FID change of the best over the baseline (negative is better)."""
        if self.baseline_fid is None or self.baseline_fid == 0:
            return None
        return self.best_fid / self.baseline_fid - 1.0


def summarize(study: optuna.Study) -> list[SummaryRow]:
    """A row per NFE at which some trial completed."""
    baselines = baseline_per_nfe(study)
    rows = []
    for nfe, t in best_per_nfe(study).items():
        base = baselines.get(nfe)
        params = {k: v for k, v in t.params.items() if k != "steps"}
        rows.append(SummaryRow(nfe, t.params["steps"], base.value if base else None, t.value,
                               t.number, params, t.user_attrs["coefficients"]))
    return rows
