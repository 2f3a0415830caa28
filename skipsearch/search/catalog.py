"""The sweeps of a storage: listed, described, compared and deleted, without torch.

Every query of trials and records comes in through the imports just below and nowhere else,
so this module follows them when they move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from ..execution.seed_range import SeedRange
from ..metrics.registry import label as label_of
from .group import Sweep, group_studies, legacy_study, load_sweep, plain_studies
from .record import CONFIRM_PREFIX, GROUP_ATTR, MODEL_NAME, TrialRecord, study_attrs
from .results import (
    Protocol,
    confirmed,
    final_infinity,
    higher_is_better,
    metric_label,
    metric_name,
)
from .study import FINISHED, make_storage, open_sweep
from .summary import SummaryRow, summarize
from .workers import gone

__all__ = ["CatalogEntry", "Protocol", "SummaryRow", "Sweep", "catalog", "delete_sweep",
           "final_scores", "higher_is_better", "label_of", "make_storage", "metric_label",
           "metric_name", "open_sweep", "paired_rows", "plain_studies", "recorded_protocols",
           "running_trials", "summarize"]


def recorded_protocols(study: Sweep) -> list[Protocol]:
    """The final-score protocols a sweep holds records of, the most used first."""
    counts: dict[tuple[int, int], int] = {}
    for key in study_attrs(study):
        if key.startswith(CONFIRM_PREFIX):
            n, _, start = key.removeprefix(CONFIRM_PREFIX).split("/", 1)[0].partition("@")
            counts[(int(n), int(start))] = counts.get((int(n), int(start)), 0) + 1
    order = sorted(counts, key=lambda k: (-counts[k], -k[0], k[1]))
    return [Protocol(SeedRange(start, n)) for n, start in order]


def final_scores(study: Sweep) -> tuple[Protocol | None, dict[int, Mapping]]:
    """The sweep's most used final-score protocol and its records (none: search scores rank)."""
    protocols = recorded_protocols(study)
    if not protocols:
        return None, {}
    fid_infinity = any(final_infinity(r) is not None
                       for r in confirmed(study, protocols[0]).values())
    protocol = Protocol(protocols[0].seed_range, fid_infinity)
    return protocol, confirmed(study, protocol)


@dataclass(frozen=True)
class CatalogEntry:
    """One sweep as ``skipsearch studies`` lists it: ``best`` scores on its ``metric``."""

    name: str
    model: str
    cells: int
    finished: int
    trials: int
    best: dict[int, float]
    legacy: bool = False
    metric: str = "score"  # the search metric's label
    reversed: tuple[int, ...] = ()  # the NFEs whose best's gain reverses on a confirm metric


def describe(study: Sweep, legacy: bool = False) -> CatalogEntry:
    """A sweep's name, model, size and best score per NFE (confirmed where recorded)."""
    _, scores = final_scores(study)
    rows = summarize(study, scores)
    return CatalogEntry(study.study_name, str(study_attrs(study).get(MODEL_NAME, "?")),
                        len(study.cells), len(study.get_trials(states=FINISHED)),
                        len(study.trials), {r.nfe: r.best_score for r in rows}, legacy,
                        metric_label(study), tuple(r.nfe for r in rows if r.reversed))


def catalog(storage: optuna.storages.BaseStorage) -> list[CatalogEntry]:
    """Every sweep of ``storage`` (and every older single study), by name."""
    summaries = storage.get_all_studies()
    grouped = sorted({str(s.user_attrs[GROUP_ATTR]) for s in summaries
                      if GROUP_ATTR in s.user_attrs})
    single = sorted(s.study_name for s in summaries  # older skipsearch: one study, no cells
                    if GROUP_ATTR not in s.user_attrs and MODEL_NAME in s.user_attrs)
    entries = [describe(load_sweep(storage, name)) for name in grouped]
    entries += [describe(load_sweep(storage, name), legacy=True) for name in single
                if name not in grouped]
    return sorted(entries, key=lambda e: e.name)


def running_trials(study: Sweep) -> int:
    """The sweep's running trials, less those whose worker process is known to be gone."""
    return sum(not gone(TrialRecord.of(t).worker)
               for t in study.get_trials(states=(TrialState.RUNNING,)))


def delete_sweep(storage: optuna.storages.BaseStorage, name: str) -> list[str]:
    """Delete every cell study of sweep ``name`` (its records go with them); their names."""
    names = group_studies(storage, name)
    if not names and legacy_study(storage, name):
        names = [name]
    for study_name in names:
        optuna.delete_study(study_name=study_name, storage=storage)
    return names


def paired_rows(a: list[SummaryRow], b: list[SummaryRow]
                ) -> list[tuple[int, SummaryRow | None, SummaryRow | None]]:
    """Two sweeps' rows side by side by NFE: every NFE either has, in order."""
    by_a, by_b = {r.nfe: r for r in a}, {r.nfe: r for r in b}
    return [(nfe, by_a.get(nfe), by_b.get(nfe)) for nfe in sorted(by_a.keys() | by_b.keys())]
