"""The tables the command line prints with rich: a sweep's scores per NFE (torch-free)."""

from __future__ import annotations

from optuna.trial import TrialState
from rich.table import Table

from ..search.group import Sweep
from ..search.record import TrialRecord
from ..search.results import metric_label
from ..search.study import FINISHED
from ..search.summary import SummaryRow, fmt_confirm, fmt_delta


def trial_count(study: Sweep) -> str:
    """'N trials' finished or pruned, and how many failed; skipped trials count for nothing."""
    finished = sum(t.state in FINISHED for t in study.trials)
    failed = sum(t.state == TrialState.FAIL and TrialRecord.of(t).skipped is None
                 for t in study.trials)
    return plural(finished, "trial") + (f" ({failed} failed)" if failed else "")


def plural(n: int, noun: str) -> str:
    """'1 trial', '3 trials'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summary_table(study: Sweep, rows: list[SummaryRow], n_samples: object,
                  final_samples: object | None) -> Table:
    """Baseline and best score per NFE, the change and its interval on the search metric and
    on each confirm metric (``worse`` where a gain reverses), the best parameters.

    ``final_samples`` names the confirmation's image count when some row was confirmed.
    """
    from ..metrics.registry import label as label_of

    label = metric_label(study)
    confirmed = any(r.confirmed for r in rows)
    how = (f"confirmed on {final_samples} fresh images, searched on "
           if confirmed else "")
    table = Table(title=f"study {study.study_name}: {label} per NFE ({how}"
                        f"{n_samples} images, {trial_count(study)} in "
                        f"{plural(len(study.cells), 'cell')})")
    others = list(dict.fromkeys(n for r in rows for n in r.confirm))
    for col in ("NFE", "cell", "baseline", "best", "change", "change [95% CI]",
                *(f"{label_of(n)} change [95% CI]" for n in others),
                "search", "front", "trial", "best parameters"):
        wide = col == "best parameters"
        table.add_column(col, justify="left" if wide else "right", no_wrap=not wide,
                         overflow="fold")
    for row in rows:
        base = f"{row.baseline_score:.4g}" if row.baseline_score is not None else "-"
        change = f"{100 * row.change:+.1f}%" if row.change is not None else "-"
        params = " ".join(f"{k.removeprefix('rho_')}={v:.4f}" if isinstance(v, float)
                          else f"{k}={v}" for k, v in row.params.items())
        table.add_row(str(row.nfe), row.cell or str(row.steps), base, f"{row.best_score:.4g}",
                      change, fmt_delta(row), *(fmt_confirm(row, n) for n in others),
                      f"{row.search_score:.4g}",
                      "*" if row.on_front else "", row.label or str(row.best_trial), params)
    return table
