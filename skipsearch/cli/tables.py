"""The tables the command line prints with rich: a sweep's FID per NFE (torch-free)."""

from __future__ import annotations

from optuna.trial import TrialState
from rich.table import Table

from ..search.group import Sweep
from ..search.record import TrialRecord
from ..search.study import FINISHED
from ..search.summary import SummaryRow, fmt_delta


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
    """Baseline and best FID per NFE, the change and its interval, the best parameters.

    ``final_samples`` names the confirmation's image count when some row was confirmed.
    """
    confirmed = any(r.confirmed for r in rows)
    how = (f"confirmed on {final_samples} fresh images, searched on "
           if confirmed else "")
    table = Table(title=f"study {study.study_name}: FID per NFE ({how}"
                        f"{n_samples} images, {trial_count(study)} in "
                        f"{plural(len(study.cells), 'cell')})")
    for col in ("NFE", "cell", "baseline FID", "best FID", "change", "FID change [95% CI]",
                "search FID", "front", "trial", "best parameters"):
        wide = col == "best parameters"
        table.add_column(col, justify="left" if wide else "right", no_wrap=not wide,
                         overflow="fold")
    for row in rows:
        base = f"{row.baseline_fid:.3f}" if row.baseline_fid is not None else "-"
        change = f"{100 * row.change:+.1f}%" if row.change is not None else "-"
        params = " ".join(f"{k.removeprefix('rho_')}={v:.4f}" if isinstance(v, float)
                          else f"{k}={v}" for k, v in row.params.items())
        table.add_row(str(row.nfe), row.cell or str(row.steps), base, f"{row.best_fid:.3f}",
                      change, fmt_delta(row), f"{row.search_fid:.3f}",
                      "*" if row.on_front else "", str(row.best_trial), params)
    return table
