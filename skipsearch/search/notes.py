"""A confirmed trial's final scores as its optuna-dashboard note, where the dashboard shows it.

A finished Optuna trial cannot take new attributes, so confirmation records live on the study
(``confirm/...``), which the dashboard does not show beside the trial. A note can be written
after the fact: optuna-dashboard keeps notes in the study's system attributes by trial.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import optuna
from optuna.trial import FrozenTrial

from ..metrics.registry import label
from .group import Sweep


def note_text(record: Mapping, primary: str) -> str:
    """The note of one confirmation record: each metric's score and change (Markdown)."""
    first = int(record["seed_start"])
    lines = [f"**Confirmed** on {record['n_samples']} fresh images "
             f"(seeds {first}..{first + int(record['n_samples']) - 1})", "",
             "| metric | score | change [95% CI] |", "| --- | ---: | --- |"]
    metrics = dict(record.get("metrics") or {primary: {"score": record.get("score")}})
    for name, m in metrics.items():
        change = "-"
        if "delta" in m:
            low, high = m["delta_ci95"]
            change = f"{m['delta']:+.4g} [{low:+.4g}, {high:+.4g}]" + \
                (" worse" if m.get("worse") else "")
        lines.append(f"| {label(name)} | {m['score']:.6g} | {change} |")
    reversed_on = record.get("reversed") or []
    if reversed_on:
        lines += ["", f"Its gain reverses on {', '.join(map(label, reversed_on))}."]
    return "\n".join(lines)


def note_confirmation(study: optuna.Study | Sweep, trial: FrozenTrial, record: Mapping,
                      primary: str) -> None:
    """Write ``record`` as the note of ``trial`` (a sweep's trial or a cell's)."""
    from optuna_dashboard import save_note

    cell = study.cell_of(trial.number) if isinstance(study, Sweep) else study
    with warnings.catch_warnings():  # a Trial handle of a finished trial: read-only here
        warnings.simplefilter("ignore")
        save_note(optuna.trial.Trial(cell, trial._trial_id), note_text(record, primary))
