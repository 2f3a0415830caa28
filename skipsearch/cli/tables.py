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


def summary_cells(rows: list[SummaryRow]) -> tuple[list[str], list[list[str]]]:
    """The per-NFE table as text: its header and one list of cells per row."""
    from ..metrics.registry import label as label_of

    others = list(dict.fromkeys(n for r in rows for n in r.confirm))
    header = ["NFE", "cell", "baseline", "best", "change", "change [95% CI]",
              *(f"{label_of(n)} change [95% CI]" for n in others),
              "search", "front", "trial", "best parameters"]
    cells = []
    for row in rows:
        base = f"{row.baseline_score:.4g}" if row.baseline_score is not None else "-"
        if row.baseline_images is not None:  # a race stopped it: its score is on fewer images
            base += f" ({row.baseline_images} img)"
        change = f"{100 * row.change:+.1f}%" if row.change is not None else "-"
        params = " ".join(f"{k.removeprefix('rho_')}={v:.4f}" if isinstance(v, float)
                          else f"{k}={v}" for k, v in row.params.items())
        cells.append([str(row.nfe), row.cell or str(row.steps), base, f"{row.best_score:.4g}",
                      change, fmt_delta(row), *(fmt_confirm(row, n) for n in others),
                      f"{row.search_score:.4g}", "*" if row.on_front else "",
                      row.label or str(row.best_trial), params])
    return header, cells


def summary_title(study: Sweep, rows: list[SummaryRow], n_samples: object,
                  final_samples: object | None) -> str:
    """What the table shows: the sweep, its metric, the images, the trials and cells."""
    confirmed = any(r.confirmed for r in rows)
    how = f"confirmed on {final_samples} fresh images, searched on " if confirmed else ""
    return (f"study {study.study_name}: {metric_label(study)} per NFE ({how}{n_samples} "
            f"images, {trial_count(study)} in {plural(len(study.cells), 'cell')})")


def summary_table(study: Sweep, rows: list[SummaryRow], n_samples: object,
                  final_samples: object | None) -> Table:
    """Baseline and best score per NFE, the change and its interval on the search metric and
    on each confirm metric (``worse`` where a gain reverses), the best parameters.

    ``final_samples`` names the confirmation's image count when some row was confirmed.
    """
    header, cells = summary_cells(rows)
    table = Table(title=summary_title(study, rows, n_samples, final_samples))
    for col in header:
        wide = col == "best parameters"
        table.add_column(col, justify="left" if wide else "right", no_wrap=not wide,
                         overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


def markdown_table(title: str, header: list[str], cells: list[list[str]]) -> str:
    """A Markdown (GitHub) table with its title as an italic line above it."""
    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    rule = "| " + " | ".join("---" if h in ("cell", "best parameters") else "---:"
                             for h in header) + " |"
    return "\n".join([f"*{title}*", "", line(header), rule, *map(line, cells)])


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}


def latex_table(title: str, header: list[str], cells: list[list[str]]) -> str:
    """A LaTeX ``table`` (booktabs rules) with the title as its caption."""
    def escape(text: str) -> str:
        return "".join(LATEX_SPECIAL.get(c, c) for c in text)

    def line(values: list[str]) -> str:
        return " & ".join(map(escape, values)) + r" \\"

    spec = "".join("l" if h in ("cell", "best parameters") else "r" for h in header)
    return "\n".join([r"\begin{table}", r"\centering", f"\\caption{{{escape(title)}}}",
                      f"\\begin{{tabular}}{{{spec}}}", r"\toprule", line(header), r"\midrule",
                      *map(line, cells), r"\bottomrule", r"\end{tabular}", r"\end{table}"])


def csv_table(rows: list[dict]) -> str:
    """The rows as CSV: raw numbers, one column per key (the union, in first-seen order)."""
    import csv
    import io

    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()})
    return out.getvalue()
