"""The end-of-sweep table: baseline and best score per NFE, the Pareto front, best parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ..tracking import StudySummary
from .bounds import bound_hits, describe
from .group import trial_label
from .record import SPACE, TrialRecord, study_attrs
from .results import (
    baseline_per_nfe,
    best_per_nfe,
    final_or_search,
    higher_is_better,
    metric_name,
    pareto_front,
    search_score,
    trial_steps,
)


@dataclass(frozen=True)
class SummaryRow:
    """One NFE: baseline and best score (confirmed when it was), the best trial and its params.

    ``confirm``: the best trial's record on each other metric (score, delta, interval, worse);
    ``reversed``: the metrics on which its gain reverses.
    """

    nfe: int
    steps: int
    baseline_score: float | None
    best_score: float
    search_score: float
    confirmed: bool
    on_front: bool
    best_trial: int
    params: dict
    coefficients: list[float]
    delta: float | None = None
    delta_ci95: tuple[float, float] | None = None
    cell: str | None = None
    on_bound: str = ""
    higher_is_better: bool = False
    confirm: Mapping[str, Mapping] = field(default_factory=dict)
    reversed: tuple[str, ...] = ()
    label: str = ""  # how tables name the best trial: its cell and number there
    # the best score with each seed block left out (confirmed and paired), for ``compare``
    leave_out: tuple[float, ...] | None = None
    # the images of the baseline's score when a race stopped it early (None: all of them)
    baseline_images: int | None = None

    @property
    def significant(self) -> bool | None:
        """Whether the interval of the change lies on the better side (None: no interval)."""
        if self.delta_ci95 is None:
            return None
        return self.delta_ci95[0] > 0 if self.higher_is_better else self.delta_ci95[1] < 0

    @property
    def change(self) -> float | None:
        """Relative change of the best over the baseline (its sign as the metric's).

        When a race stopped the baseline, both are taken on its images: delta / baseline.
        """
        if self.baseline_score is None or self.baseline_score == 0:
            return None
        if self.baseline_images is not None:
            return None if self.delta is None else self.delta / self.baseline_score
        return self.best_score / self.baseline_score - 1.0


def summarize(study: optuna.Study,
              scores: Mapping[int, Mapping] | None = None) -> list[SummaryRow]:
    """A row per NFE at which some trial completed."""
    baselines = baseline_per_nfe(study, scores)
    best = best_per_nfe(study, scores)
    values = {nfe: final_or_search(t, scores) for nfe, t in best.items()}
    higher = higher_is_better(study)
    front = set(pareto_front(values, higher))
    primary = metric_name(study)
    rows = []
    for nfe, t in best.items():
        base = baselines.get(nfe)
        params = {k: v for k, v in t.params.items() if k != "steps"}
        record = (scores or {}).get(t.number) or {}
        ci = record.get("delta_ci95")
        rows.append(SummaryRow(nfe, trial_steps(t),
                               final_or_search(base, scores) if base else None, values[nfe],
                               search_score(t), bool(scores) and t.number in scores,
                               nfe in front, t.number, params, TrialRecord.of(t).coefficients,
                               record.get("delta"), tuple(ci) if ci else None,
                               cell_name(study, t), bound_note(study, t), higher,
                               {n: m for n, m in record.get("metrics", {}).items()
                                if n != primary},
                               tuple(record.get("reversed", ())), trial_label(study, t),
                               leave_out_of(record, primary), stopped_images(base, scores)))
    return rows


def stopped_images(baseline, scores: Mapping[int, Mapping] | None) -> int | None:
    """The images a race scored a stopped baseline on (None: not stopped, or no record)."""
    record = (scores or {}).get(baseline.number) if baseline is not None else None
    return int(record["images"]) if record and "stopped" in record else None


def leave_out_of(record: Mapping, metric: str) -> tuple[float, ...] | None:
    """A confirmation's leave-one-block-out values of ``metric`` (None when not kept)."""
    values = record.get("metrics", {}).get(metric, {}).get("leave_out")
    return tuple(values) if values else None


def cell_name(study, trial) -> str | None:
    """The short name of the cell holding ``trial`` (None for a study without cells)."""
    if not hasattr(study, "cell_of"):
        return None
    return study.cell_of(trial.number).study_name.rsplit("/", 1)[-1]


def bound_note(study, trial) -> str:
    """Which of the trial's coefficients lie on a bound of its cell's range (empty if none)."""
    if not hasattr(study, "cell_of"):
        return ""
    ranges = study_attrs(study.cell_of(trial.number)).get(SPACE) or {}
    hits = bound_hits(trial.params, ranges)
    return describe(hits, trial.params, ranges) if hits else ""


def row_record(r: SummaryRow) -> dict:
    """A row as plain values: scores, change and interval, confirm metrics, trial, params."""
    low, high = r.delta_ci95 or (None, None)
    record = {"nfe": r.nfe, "cell": r.cell, "baseline": r.baseline_score,
              "baseline_images": r.baseline_images, "best": r.best_score,
              "change": r.change, "delta": r.delta, "delta_ci95_low": low,
              "delta_ci95_high": high, "significant": r.significant, "search": r.search_score,
              "confirmed": r.confirmed, "trial": r.label, "on_front": r.on_front,
              "on_bound": r.on_bound or None, "reversed": list(r.reversed)}
    for name, other in r.confirm.items():
        record[f"{name}_score"] = other.get("score")
        record[f"{name}_delta"] = other.get("delta")
        low, high = other.get("delta_ci95") or (None, None)
        record.update({f"{name}_delta_ci95_low": low, f"{name}_delta_ci95_high": high,
                       f"{name}_worse": other.get("worse")})
    return {**record, **{f"param_{k}": v for k, v in r.params.items()}}


def fmt_delta(row: SummaryRow) -> str:
    """``-3.21 [-4.02, -2.40]``, with ``n.s.`` when the interval reaches zero; ``-`` if none."""
    return fmt_interval(row.delta, row.delta_ci95, row.significant)


def fmt_interval(delta: float | None, ci: object, sure: bool | None) -> str:
    """A change and its interval, ``n.s.`` unless ``sure``; ``-`` without an interval."""
    if delta is None or not ci:
        return "-"
    low, high = ci
    return f"{delta:+.4g} [{low:+.4g}, {high:+.4g}]" + ("" if sure else " n.s.")


def fmt_confirm(row: SummaryRow, name: str) -> str:
    """The best trial's change on confirm metric ``name``: ``worse`` when it reverses."""
    record = row.confirm.get(name)
    if not record:
        return "-"
    if "delta" not in record:
        return f"{record['score']:.4g}"
    low, high = record["delta_ci95"]
    better = low > 0 if record.get("higher_is_better") else high < 0
    text = fmt_interval(record["delta"], (low, high), better or record.get("worse"))
    return text + (" worse" if record.get("worse") else "")


def study_tables(study: optuna.Study, rows: list[SummaryRow],
                 exports: Path | None) -> StudySummary:
    """Every trial as a table row, and the front, for the study's tracking run."""
    names = sorted({k for t in study.trials for k in t.params})
    columns = ["trial", "state", "nfe", "score", "n_samples", "baseline", *names]
    records = [(t, TrialRecord.of(t)) for t in study.trials]
    trials = [[t.number, t.state.name, r.nfe, t.values[0] if t.values else None, r.n_samples,
               r.baseline, *(t.params.get(k) for k in names)] for t, r in records]
    front = [[r.nfe, r.best_score, r.baseline_score, r.search_score, r.best_trial, r.confirmed]
             for r in rows if r.on_front]
    others = sorted({n for r in rows for n in r.confirm})
    per_nfe = [[r.nfe, r.cell or str(r.steps), r.baseline_score, r.best_score, r.change,
                r.delta, *(r.delta_ci95 or (None, None)), r.significant, r.search_score,
                r.best_trial, r.confirmed, r.on_bound, ",".join(r.reversed),
                *(r.confirm.get(n, {}).get(k) for n in others
                  for k in ("score", "delta", "worse"))] for r in rows]
    return StudySummary(columns, trials, ["nfe", "score", "baseline_score", "search_score",
                                          "trial", "confirmed"], front, exports,
                        ["nfe", "cell", "baseline_score", "best_score", "change", "delta",
                         "delta_ci95_low", "delta_ci95_high", "significant", "search_score",
                         "trial", "confirmed", "on_bound", "reversed_on",
                         *(f"{n}_{k}" for n in others for k in ("score", "delta", "worse"))],
                        per_nfe, metric_name(study))


def images_spent(study, protocol) -> dict[str, int]:
    """Images generated for the sweep: its search trials, confirmation and limit records.

    A search trial counts the images of its last stage (none when it took a stored score);
    a record counts what it generated (``generated``; records from before this count lack it).
    """
    from .limit import limit_records
    from .results import confirmed

    search = sum(int(TrialRecord.of(t).n_samples or 0) for t in study.trials
                 if TrialRecord.of(t).reused is None)
    confirm = sum(int(r.get("generated", 0)) for r in confirmed(study, protocol).values())
    limit = sum(int(r.get("generated", 0)) for r in
                (limit_records(study, protocol) if protocol is not None else {}).values())
    return {"search": search, "confirmation": confirm, "limit": limit}


def images_line(spent: Mapping[str, int], reused: int = 0) -> str:
    """``images: search 3,200 (61%), confirmation ...``, and what stored scores saved."""
    total = sum(spent.values())
    parts = ", ".join(f"{k} {v:,} ({100 * v / total:.0f}%)" if total else f"{k} 0"
                      for k, v in spent.items())
    saved = f"; {reused:,} more taken from stored scores this run" if reused else ""
    return f"images:  {total:,} generated: {parts}{saved}"
