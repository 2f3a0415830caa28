"""Assemble the report: figures to PNG files, sections, and index.html with the PNGs embedded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from optuna.trial import TrialState

from ..search import record as keys
from ..search.group import Sweep, cell_label
from ..search.limit import limit_line, limit_records
from ..search.record import search_seeds
from ..search.results import Protocol
from ..search.summary import SummaryRow, fmt_delta, summarize
from ..urls import safe_url
from . import figures
from .data import TrialRow, param_bounds, param_importances, trial_rows
from .instruments import loss_section, windows_section
from .page import (
    Cell,
    definitions,
    document,
    esc,
    figure,
    fmt_change,
    fmt_fid,
    fmt_params,
    note,
    paragraph,
    section,
    table,
)
from .samples import Grid

FIGURES = ("fid-vs-nfe.png", "contour.png", "history.png", "importance.png")
SAMPLE_GLOB = "samples-nfe*-*.png"


def clear_folder(folder: Path) -> None:
    """Remove the files an earlier report wrote to ``folder`` (and nothing else)."""
    for path in [folder / "index.html", *(folder / n for n in FIGURES),
                 *folder.glob(SAMPLE_GLOB)]:
        path.unlink(missing_ok=True)


def saved(fig: Figure | None, path: Path) -> Path | None:
    """Write the figure if there is one."""
    return figures.save_png(fig, path) if fig is not None else None


def overview(study: Sweep, rows: Sequence[TrialRow], storage_url: str,
             protocol: Protocol | None, scores: Mapping[int, Mapping]) -> str:
    """What the study is: model, sampler, metric, seeds, trial counts, confirmation."""
    attrs = study.user_attrs
    states: dict[str, int] = {}
    for r in rows:
        states[r.state.lower()] = states.get(r.state.lower(), 0) + 1
    seeds = search_seeds(attrs)
    model = f"{attrs.get(keys.MODEL_NAME, '?')} (sha256 {str(attrs.get(keys.MODEL_SHA256))[:12]})"
    items = {
        "study": study.study_name,
        "cells": ", ".join(cell_label(c) for c in study.cells),
        "storage": safe_url(storage_url),
        "model": model,
        "sampler": (attrs.get(keys.SAMPLER) or {}).get("name", "?"),
        "parameterization": attrs.get(keys.PARAMETERIZATION, "?"),
        "objectives": "FID" if len(study.directions) == 1 else "FID and NFE (a Pareto front)",
        "feature network": (attrs.get(keys.METRIC) or {}).get("feature_extractor", "?"),
        "search FID": (f"{seeds.count} images, seeds {seeds.start}..{seeds.stop - 1}"
                       if seeds is not None else "?"),
        "trials": ", ".join(f"{v} {k}" for k, v in sorted(states.items())) or "none",
    }
    if protocol is not None:
        final = protocol.seed_range
        items["confirmed FID"] = (f"{len(scores)} trials re-scored on {final.count} "
                                  f"fresh images, seeds {final.start}..{final.stop - 1}"
                                  if scores else
                                  f"no trial confirmed under {final.count} images from "
                                  f"seed {final.start}; search FIDs are shown")
    items["generated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return definitions(items)


def summary_section(summary: Sequence[SummaryRow], path: Path | None,
                    limit: str | None = None) -> str:
    """Baseline and best FID per NFE (the numbers the export writes) and the FID-vs-NFE plot."""
    title = "FID vs NFE: baseline and tuned"
    if not summary:
        return section("fid-vs-nfe", title, note("no trial has completed yet"))
    headers = ["NFE", "steps", "baseline FID", "best FID", "change", "FID change [95% CI]",
               "search FID", "confirmed", "Pareto front", "trial", "best parameters",
               "on a bound (within 2% of the range)"]
    rows = [({"data-nfe": str(r.nfe)},
             [Cell(r.nfe, "nfe"), r.steps, Cell(fmt_fid(r.baseline_fid), "baseline-fid"),
              Cell(fmt_fid(r.best_fid), "best-fid"), Cell(fmt_change(r.change), "change"),
              Cell(fmt_delta(r), "delta"),
              Cell(fmt_fid(r.search_fid), "search-fid"),
              Cell("yes" if r.confirmed else "no", "confirmed"),
              Cell("*" if r.on_front else "", "front"), Cell(r.best_trial, "trial"),
              Cell(fmt_params(r.params), "text"), Cell(r.on_bound, "on-bound")])
            for r in summary]
    parts = [paragraph("Best FID is the confirmed score on fresh seeds where the trial was "
                       "confirmed, else the search FID; the Pareto front holds the NFEs whose "
                       "best FID beats every smaller NFE. The FID change is FID(best) - "
                       "FID(baseline) on the same confirmation seeds, with a 95% jackknife "
                       "interval over blocks of seeds; n.s. marks an interval that reaches "
                       "zero (such a schedule is never best.yaml)."),
             table("summary-table", headers, rows)]
    if limit:
        parts.append(paragraph(limit))
    if path is not None:
        parts.append(figure(path, "FID vs NFE, baseline and best schedule"))
    return section("fid-vs-nfe", title, *parts)


def contour_section(path: Path | None, parameterization: str) -> str:
    """FID over rho_bottom x rho_top per NFE, or why it is missing."""
    title = "FID over rho_top x rho_bottom"
    if path is None:
        return section("contour", title, note(
            f"skipped: the study has no completed trials with rho_top and rho_bottom parameters "
            f"(parameterization {parameterization}); this figure is for the linear one"))
    return section("contour", title, figure(
        path, "FID of completed trials over (rho_bottom, rho_top), one panel per NFE; "
              "the star is the lowest search FID"))


def history_section(path: Path | None) -> str:
    """FID per trial number."""
    title = "Optimisation history"
    if path is None:
        return section("history", title, note("no trial has reported an FID yet"))
    return section("history", title, figure(
        path, "search FID per trial, a colour per NFE; crosses are pruned trials at their last "
              "stage; the line is the best so far per NFE"))


def importance_section(importances: Mapping[str, Mapping[str, float]],
                       missing: Mapping[str, str], path: Path | None) -> str:
    """fANOVA parameter importances per cell, and the cells where they could not be computed."""
    title = "Parameter importances per cell"
    notes = [note(f"{cell}: {reason}") for cell, reason in missing.items()]
    if not importances or path is None:
        return section("importance", title, *(notes or [note("not available")]))
    rows = [({"data-cell": cell, "data-param": k}, [Cell(cell, "text"), Cell(k, "text"),
                                                     f"{v:.3f}"])
            for cell, imp in importances.items() for k, v in imp.items()]
    return section("importance", title,
                   paragraph("fANOVA importance of each parameter for the search FID over the "
                             "completed trials of each cell (solver and step count fixed)."),
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


def trials_section(rows: Sequence[TrialRow]) -> str:
    """Every trial: number, state, NFE, parameters, FID, sample count, confirmed FID."""
    headers = ["trial", "state", "NFE", "baseline", "parameters", "FID", "n_samples",
               "confirmed FID"]
    body = []
    for r in rows:
        kind = "baseline" if r.baseline else r.state.lower()
        body.append(({"data-trial": str(r.number), "class": kind},
                     [Cell(r.number, "trial"), Cell(r.state.lower(), "state"),
                      "-" if r.nfe is None else r.nfe, "yes" if r.baseline else "",
                      Cell(fmt_params(r.params), "text"), Cell(fmt_fid(r.fid), "fid"),
                      "-" if r.n_samples is None else r.n_samples,
                      Cell(fmt_fid(r.final_fid), "final-fid")]))
    return section("trials", "All trials",
                   paragraph("FID is the search FID; for a pruned trial, the FID at the stage "
                             "where it stopped (n_samples images)."),
                   table("trials-table", headers, body))


def write_report(study: Sweep, folder: Path, storage_url: str,
                 scores: Mapping[int, Mapping] | None = None, protocol: Protocol | None = None,
                 grids: Sequence[Grid] | None = None,
                 grids_note: str | None = None) -> Path:
    """Write the figures and ``index.html`` (PNGs embedded) into ``folder``; returns the page."""
    # the baseline at larger step counts and the answer to "breaking the limit", if measured
    records = limit_records(study, protocol) if protocol is not None else {}
    limit = {r["nfe"]: r["fid"] for k, r in records.items() if k != "answer"}
    scores = dict(scores or {})
    folder.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study, scores)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    summary = summarize(study, scores) if complete else []
    importances, missing = param_importances(study)
    paths = {name: saved(fig, folder / name) for name, fig in (
        ("fid-vs-nfe.png", figures.fid_vs_nfe_figure(summary, limit)),
        ("contour.png", figures.contour_figure(rows, param_bounds(study))),
        ("history.png", figures.history_figure(rows)),
        ("importance.png", figures.importance_figure(importances)))}
    parameterization = str(study.user_attrs.get(keys.PARAMETERIZATION, "?"))
    page = document(
        f"skipsearch report: {study.study_name}",
        overview(study, rows, storage_url, protocol, scores),
        summary_section(summary, paths["fid-vs-nfe.png"], limit_line(records.get("answer"))),
        contour_section(paths["contour.png"], parameterization),
        history_section(paths["history.png"]),
        importance_section(importances, missing, paths["importance.png"]),
        samples_section(grids, grids_note),
        windows_section(folder),
        loss_section(folder),
        trials_section(rows))
    index = folder / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    return index
