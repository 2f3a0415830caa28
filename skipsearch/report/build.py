"""Assemble the report: figures to PNG files, sections, and index.html with the PNGs embedded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from optuna.trial import TrialState

from ..configuration.urls import safe_url
from ..metrics.registry import label as label_of
from ..search import record as keys
from ..search.group import Sweep, cell_label
from ..search.limit import limit_line, limit_records, limit_scores
from ..search.record import TrialRecord, search_seeds, study_attrs
from ..search.results import (
    Protocol,
    higher_is_better,
    metric_label,
    metric_name,
)
from ..search.side_by_side import difference_text, side_by_side
from ..search.summary import SummaryRow, fmt_confirm, fmt_delta, summarize
from . import figures
from .data import TrialRow, param_bounds, param_importances, trial_rows
from .instruments import instrument_folders, loss_section, windows_section
from .page import (
    Cell,
    definitions,
    document,
    esc,
    figure,
    fmt_change,
    fmt_params,
    fmt_score,
    note,
    paragraph,
    section,
    table,
)
from .samples import Grid

FIGURES = ("score-vs-nfe.png", "contour.png", "history.png", "importance.png")
OLD_FIGURES = ("fid-vs-nfe.png",)  # the names reports before the metric registry wrote
SAMPLE_GLOB = "samples-nfe*-*.png"


def clear_folder(folder: Path) -> None:
    """Remove the files an earlier report wrote to ``folder`` (and nothing else)."""
    for path in [folder / "index.html", *(folder / n for n in (*FIGURES, *OLD_FIGURES)),
                 *folder.glob(SAMPLE_GLOB)]:
        path.unlink(missing_ok=True)


def better(higher: bool) -> str:
    """``higher is better`` or ``lower is better``."""
    return f"{'higher' if higher else 'lower'} is better"


def confirm_metrics(scores: Mapping[int, Mapping], primary: str) -> list[str]:
    """The metrics other than ``primary`` that the confirmation records score, in order."""
    return list(dict.fromkeys(n for r in scores.values() for n in r.get("metrics", {})
                              if n != primary))


def objectives_text(study: Sweep, label: str) -> str:
    """The search's objectives: the metric, or it and the NFE or a second metric (a front)."""
    if len(study.directions) == 1:
        return label
    primary = metric_name(study)
    second = next((n for t in study.trials for n in (TrialRecord.of(t).scores or {})
                   if n != primary), None)
    return f"{label} and {label_of(second) if second else 'NFE'} (a Pareto front)"


def saved(fig: Figure | None, path: Path) -> Path | None:
    """Write the figure if there is one."""
    return figures.save_png(fig, path) if fig is not None else None


def overview(study: Sweep, rows: Sequence[TrialRow], storage_url: str,
             protocol: Protocol | None, scores: Mapping[int, Mapping]) -> str:
    """What the study is: model, sampler, metric, seeds, trial counts, confirmation."""
    attrs = study_attrs(study)
    states: dict[str, int] = {}
    for r in rows:
        states[r.state.lower()] = states.get(r.state.lower(), 0) + 1
    seeds = search_seeds(attrs)
    model = f"{attrs.get(keys.MODEL_NAME, '?')} (sha256 {str(attrs.get(keys.MODEL_SHA256))[:12]})"
    name, label = metric_name(study), metric_label(study)
    others = confirm_metrics(scores, name)
    items = {
        "study": study.study_name,
        "cells": ", ".join(cell_label(c) for c in study.cells),
        "storage": safe_url(storage_url),
        "model": model,
        "sampler": (attrs.get(keys.SAMPLER) or {}).get("name", "?"),
        "parameterization": attrs.get(keys.PARAMETERIZATION, "?"),
        "metric": f"{label} ({name}, {better(higher_is_better(study))})",
        "objectives": objectives_text(study, label),
        "feature network": (attrs.get(keys.METRIC) or {}).get("feature_extractor", "?"),
        "search": (f"{label} on {seeds.count} images, seeds {seeds.start}..{seeds.stop - 1}"
                   if seeds is not None else "?"),
        "trials": ", ".join(f"{v} {k}" for k, v in sorted(states.items())) or "none",
    }
    if protocol is not None:
        final = protocol.seed_range
        items["confirmation"] = (f"{len(scores)} trials re-scored on {final.count} "
                                 f"fresh images, seeds {final.start}..{final.stop - 1}"
                                 if scores else
                                 f"no trial confirmed under {final.count} images from "
                                 f"seed {final.start}; search scores are shown")
        if others:
            items["confirm metrics"] = ", ".join(f"{label_of(n)} ({n})" for n in others)
    items["generated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return definitions(items)


def reversal_line(row: SummaryRow, label: str) -> str:
    """``reversed on X``: the best at an NFE gains on the search metric, loses on others."""
    names = ", ".join(label_of(n) for n in row.reversed)
    return (f"reversed on {names}: the best schedule at NFE {row.nfe} (trial {row.label}) "
            f"gains on {label} but its 95% interval on {names} lies on the worse side; under "
            "metric.on_reversal=drop (the default) it is never best.yaml")


def summary_section(summary: Sequence[SummaryRow], path: Path | None,
                    limit: str | None = None, label: str = "score") -> str:
    """Baseline and best score per NFE, confirm metrics, reversals and the score-vs-NFE plot.

    The scores are the numbers the export writes; each confirm metric's change comes from the
    same confirmation images, and a gain that reverses on one is flagged in a note.
    """
    title = f"{label} per NFE: baseline and tuned"
    if not summary:
        return section("score-vs-nfe", title, note("no trial has completed yet"))
    others = list(dict.fromkeys(n for r in summary for n in r.confirm))
    headers = ["NFE", "steps", f"baseline {label}", f"best {label}", "change",
               f"{label} change [95% CI]",
               *(f"{label_of(n)} change [95% CI]" for n in others),
               f"search {label}", "confirmed", "Pareto front", "trial", "best parameters",
               "on a bound (within 2% of the range)", *(["reversed on"] if others else [])]
    rows = [({"data-nfe": str(r.nfe)},
             [Cell(r.nfe, "nfe"), r.steps, Cell(fmt_score(r.baseline_score), "baseline"),
              Cell(fmt_score(r.best_score), "best"), Cell(fmt_change(r.change), "change"),
              Cell(fmt_delta(r), "delta"),
              *(Cell(fmt_confirm(r, n), f"confirm-{n}") for n in others),
              Cell(fmt_score(r.search_score), "search"),
              Cell("yes" if r.confirmed else "no", "confirmed"),
              Cell("*" if r.on_front else "", "front"), Cell(r.label or r.best_trial, "trial"),
              Cell(fmt_params(r.params), "text"), Cell(r.on_bound, "on-bound"),
              *([Cell(", ".join(map(label_of, r.reversed)) or "-", "reversed")]
                if others else [])])
            for r in summary]
    higher = summary[0].higher_is_better
    others_text = (f" The other columns of changes are the confirm metrics ("
                   f"{', '.join(label_of(n) for n in others)}), scored on the same images: "
                   "worse marks an interval on the worse side, and a gain that reverses on one "
                   "is named under reversed on." if others else "")
    parts = [paragraph(f"Best {label} ({better(higher)}) is the confirmed score on fresh seeds "
                       f"where the trial was confirmed, else the search score; the Pareto front "
                       f"holds the NFEs whose best beats every smaller NFE. The {label} change "
                       f"is {label}(best) - {label}(baseline) on the same confirmation seeds, "
                       "with a 95% jackknife interval over blocks of seeds; n.s. marks an "
                       "interval that reaches zero (such a schedule is never best.yaml)."
                       + others_text),
             table("summary-table", headers, rows)]
    parts += [note(reversal_line(r, label)) for r in summary if r.reversed]
    if limit:
        parts.append(paragraph(limit))
    if path is not None:
        parts.append(figure(path, f"{label} per NFE, baseline and best schedule; error bars: "
                                  "the 95% interval of a confirmed change"))
    return section("score-vs-nfe", title, *parts)


def contour_section(path: Path | None, parameterization: str, label: str = "score") -> str:
    """The search score over rho_bottom x rho_top per NFE, or why it is missing."""
    title = f"search {label} over rho_top x rho_bottom"
    if path is None:
        return section("contour", title, note(
            f"skipped: the study has no completed trials with rho_top and rho_bottom parameters "
            f"(parameterization {parameterization}); this figure is for the linear one"))
    return section("contour", title, figure(
        path, f"search {label} of completed trials over (rho_bottom, rho_top), one panel per "
              "NFE; the star is the best search score"))


def history_section(path: Path | None, label: str = "score") -> str:
    """The search score per trial number."""
    title = "Optimisation history"
    if path is None:
        return section("history", title, note(f"no trial has reported a {label} yet"))
    return section("history", title, figure(
        path, f"search {label} per trial, a colour per NFE; crosses are pruned trials at their "
              "last stage; the line is the best so far per NFE"))


def importance_section(importances: Mapping[str, Mapping[str, float]],
                       missing: Mapping[str, str], path: Path | None,
                       label: str = "score") -> str:
    """fANOVA parameter importances per cell, and the cells where they could not be computed."""
    title = "Parameter importances per cell"
    notes = [note(f"{cell}: {reason}") for cell, reason in missing.items()]
    if not importances or path is None:
        return section("importance", title, *(notes or [note("not available")]))
    rows = [({"data-cell": cell, "data-param": k}, [Cell(cell, "text"), Cell(k, "text"),
                                                     f"{v:.3f}"])
            for cell, imp in importances.items() for k, v in imp.items()]
    return section("importance", title,
                   paragraph(f"fANOVA importance of each parameter for the search {label} "
                             "over the completed trials of each cell (solver and step count "
                             "fixed)."),
                   table("importance-table", ["cell", "parameter", "importance"], rows),
                   figure(path, "parameter importances per cell"), *notes)


def samples_section(grids: Sequence[Grid] | None, reason: str | None) -> str:
    """The baseline's and the best schedule's grid side by side at each NFE."""
    title = "Samples: baseline and best schedule"
    if grids is None:
        return section("samples", title, note(reason or "no sample grids were drawn"))
    if not grids:
        return section("samples", title, note(reason or "no completed trial to sample"))
    parts = []
    for nfe in sorted({g.nfe for g in grids}):
        at = [g for g in grids if g.nfe == nfe]
        same = len(at) == 1 and at[0].role == "baseline"
        figs = "".join(figure(g.path, f"{g.role} (trial {g.trial})") for g in at)
        extra = paragraph("the baseline is also the best schedule at this NFE") if same else ""
        parts.append(f'<div class="nfe" data-nfe="{esc(nfe)}"><h3>NFE {esc(nfe)}</h3>{extra}'
                     f'<div class="grids">{figs}</div></div>')
    return section("samples", title, *parts)


def side_by_side_section(study: Sweep, others: Sequence[Sweep], label: str) -> str:
    """Each other sweep beside this one per NFE: both bests, B - A paired, both changes."""
    if not others:
        return ""
    parts = [paragraph(f"A is {study.study_name}. B - A is paired by seed block where both "
                       "sweeps confirmed on the same images and seeds (95% jackknife "
                       "interval; n.s. where it reaches zero); '-' where they were measured "
                       "apart.")]
    for other in others:
        pairs, _, _ = side_by_side(study, other)
        rows = [({}, [str(p.nfe), best_of(p.a), best_of(p.b), difference_text(p),
                      fmt_delta(p.a) if p.a else "-", fmt_delta(p.b) if p.b else "-",
                      p.why or ""]) for p in pairs]
        parts += [paragraph(f"B = {other.study_name}"),
                  table(f"beside-{other.study_name}",
                        ["NFE", f"best {label} A", f"best {label} B", "B - A [95% CI]",
                         "change A [95% CI]", "change B [95% CI]", "not compared because"],
                        rows)]
    return section("side-by-side", f"Beside other sweeps: {label} per NFE", *parts)


def best_of(row: SummaryRow | None) -> str:
    """A row's best score, ``-`` when the sweep lacks the NFE."""
    return "-" if row is None else f"{row.best_score:.4g}"


def trials_section(rows: Sequence[TrialRow], label: str = "score") -> str:
    """Every trial: number, state, NFE, parameters, score, sample count, confirmed score."""
    headers = ["trial", "state", "NFE", "baseline", "parameters", f"search {label}",
               "n_samples", f"confirmed {label}"]
    body = []
    for r in rows:
        kind = "baseline" if r.baseline else r.state.lower()
        body.append(({"data-trial": str(r.number), "class": kind},
                     [Cell(r.label or r.number, "trial"), Cell(r.state.lower(), "state"),
                      "-" if r.nfe is None else r.nfe, "yes" if r.baseline else "",
                      Cell(fmt_params(r.params), "text"), Cell(fmt_score(r.score), "score"),
                      "-" if r.n_samples is None else r.n_samples,
                      Cell(fmt_score(r.final_score), "final-score")]))
    return section("trials", "All trials",
                   paragraph(f"Search {label} is the trial's score during the search; for a "
                             "pruned trial, the score at the stage where it stopped "
                             "(n_samples images)."),
                   table("trials-table", headers, body))


def write_report(study: Sweep, folder: Path, storage_url: str,
                 scores: Mapping[int, Mapping] | None = None, protocol: Protocol | None = None,
                 grids: Sequence[Grid] | None = None,
                 grids_note: str | None = None, others: Sequence[Sweep] = ()) -> Path:
    """Write the figures and ``index.html`` (PNGs embedded) into ``folder``; returns the page."""
    # the baseline at larger step counts and the answer to "breaking the limit", if measured
    records = limit_records(study, protocol) if protocol is not None else {}
    limit = limit_scores(study, protocol)
    scores = dict(scores or {})
    label, higher = metric_label(study), higher_is_better(study)
    folder.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study, scores)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    summary = summarize(study, scores) if complete else []
    importances, missing = param_importances(study)
    paths = {name: saved(fig, folder / name) for name, fig in (
        ("score-vs-nfe.png", figures.score_vs_nfe_figure(summary, limit, label)),
        ("contour.png", figures.contour_figure(rows, param_bounds(study), label, higher)),
        ("history.png", figures.history_figure(rows, label, higher)),
        ("importance.png", figures.importance_figure(importances, label)))}
    parameterization = str(study_attrs(study).get(keys.PARAMETERIZATION, "?"))
    page = document(
        f"skipsearch report: {study.study_name}",
        overview(study, rows, storage_url, protocol, scores),
        summary_section(summary, paths["score-vs-nfe.png"],
                        limit_line(records.get("answer"), label, higher), label),
        contour_section(paths["contour.png"], parameterization, label),
        history_section(paths["history.png"], label),
        importance_section(importances, missing, paths["importance.png"], label),
        side_by_side_section(study, others, label),
        samples_section(grids, grids_note),
        *(make(where, folder) for where in instrument_folders(folder)
          for make in (windows_section, loss_section)),
        trials_section(rows, label))
    index = folder / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    return index
