"""Confirmation: re-score the top trials at the final sample count on fresh seeds.

A search ranks schedules by one metric on one fixed, smallish seed range, and its winner is
partly the schedule that got lucky on those seeds (and on that metric's feature network).
Before anything is called best, the top-k trials of each cell and that cell's baseline are
scored again on ``Protocol.seeds`` (disjoint from the search seeds) on the search metric and
on every ``metric.confirm`` metric, racing block by block (``search.race``): one shown worse
than the leader stops there. Each tuned survivor gets an interval for each change over the
baseline on the same seeds. Results are study attributes ``confirm/<n>@<start>/<trial>``,
so a resumed or second worker does not score a trial twice, and the numbers reach the export;
scores kept in the storage (``search.reuse``) are taken instead of generated again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import optuna

from ..metrics.blocks import Delta, between
from ..metrics.scorer import Scorer
from ..models import LoadedModel
from .group import Sweep, trial_label
from .notes import note_confirmation
from .race import Entrant, Race
from .record import set_study_attr
from .results import Protocol, confirmed, final_score, per_cell, trial_sampler, trial_schedule
from .reuse import Reuse

log = logging.getLogger(__name__)


def confirm_top(study: optuna.Study, model: LoadedModel, protocol: Protocol, top_k: int,
                batch_size: int, device: str, scorer: Scorer, blocks: int = 10,
                reuse: Reuse | None = None, racing: bool = True,
                alpha: float = 0.05) -> dict[int, Mapping]:
    """Race every cell with a candidate not yet confirmed under ``protocol``; return all records.

    A cell's candidates advance together over ``blocks`` blocks of the protocol's seeds
    (``search.race``), each block's images fed to every metric of ``scorer`` (the search
    metric first), and the ones shown worse than the leader stop. A tuned candidate that
    was not stopped also gets, per metric, S(tuned) - S(baseline) on the blocks both were
    scored on and its 95% jackknife interval (``metrics.blocks``), and names the metrics on
    which a gain of the search metric reverses. Each score keeps its leave-one-block-out
    values (``leave_out``), so ``compare`` pairs two sweeps' schedules. Scores on record in
    the storage under the same protocol (``reuse``) are taken, not generated again.
    """
    names = scorer.names
    done = confirmed(study, protocol)
    k = max(2, min(blocks, protocol.seed_range.count))
    reuse = reuse if reuse is not None else Reuse.off()
    race = Race(model, scorer, names, protocol.seeds, k, batch_size, device,
                protocol.fid_infinity, alpha, racing, reuse)
    cells = [(tuned, base) for tuned, base in per_cell(study, top_k).values()
             if any(t.number not in done or not complete(done[t.number], names,
                                                         base is not None and t is not base)
                    for t in [*tuned, *([base] if base is not None else [])])]
    if cells:
        log.info("confirming %d cells on %d fresh images each (seeds %d..%d, %d blocks%s), "
                 "on %s", len(cells), protocol.seed_range.count, protocol.seed_range.start,
                 protocol.seeds[-1], k, ", racing" if racing else "", ", ".join(names))
    for tuned, base in cells:
        entrants = []
        for t in [*tuned, *([base] if base is not None else [])]:
            e = Entrant(t, t is base, trial_schedule(t), trial_sampler(study, t))
            e.keys = race.keys(e.schedule, e.sampler)
            e.known = reuse.get(e.keys)
            entrants.append(e)
        label = trial_label(study, tuned[0] if tuned else base).split("#")[0]
        race.run(entrants, label)
        write_cell(study, protocol, race, entrants, done, reuse)
    return confirmed(study, protocol)


def write_cell(study: optuna.Study, protocol: Protocol, race: Race, entrants: list[Entrant],
               done: Mapping[int, Mapping], reuse: Reuse) -> None:
    """Each candidate's record (its scores, and the change over the baseline) and entries."""
    scorer, k = race.scorer, race.blocks
    base = next((e for e in entrants if e.baseline), None)
    for e in entrants:
        values = race.values_at(e, e.done)
        primary = values[scorer.primary]
        record = final_score(primary["score"], race.infinity(e), protocol.seed_range,
                             scorer.primary)
        old = done.get(e.trial.number, {})
        record.update(images=primary["images"],
                      generated=e.generated + int(old.get("generated", 0)))
        if e.known and e.fed == 0:
            reuse.note(f"the confirmation of trial {trial_label(study, e.trial)}",
                       primary["images"])
        if e.stop is not None:
            record["stopped"] = e.stop
        record["metrics"] = {n: {"score": v["score"],
                                 "higher_is_better": scorer.higher_is_better(n),
                                 "leave_out": v["leave_out"],
                                 **({"parts": v["parts"]} if v["parts"] else {})}
                             for n, v in values.items()}
        prefix = {}
        if not e.baseline and e.stop is None and base is not None:
            m = base.done
            ours, theirs = race.values_at(e, m), race.values_at(base, m)
            if m < k:
                prefix = {n: {"score": v["score"], "leave_out": v["leave_out"]}
                          for n, v in ours.items()}
            pair(record, ours, theirs, scorer, base.trial.number)
        set_study_attr(study, f"{protocol.prefix}{e.trial.number}", record)
        note_confirmation(study, e.trial, record, scorer.primary)
        if e.fed or prefix:
            entries = {n: {**v, **({"score_infinity": record["score_infinity"]}
                                   if n == scorer.primary else {}),
                           "prefix": {**((e.known or {}).get(n, {}).get("prefix", {})),
                                      **({str(base.done): prefix[n]} if prefix else {})},
                           "what": f"trial {trial_label(study, e.trial)}"}
                       for n, v in values.items()}
            reuse.put(study.cell_of(e.trial.number) if isinstance(study, Sweep) else study,
                      e.keys, entries)
        if e.fed and e.fed == e.done and e.state is not None:
            reuse.keep_state(e.keys, {n: e.state.accumulators[n].state() for n in race.names},
                             e.fed)


def pair(record: dict, ours: Mapping[str, Mapping], theirs: Mapping[str, Mapping],
         scorer: Scorer, baseline: int) -> None:
    """Add to ``record`` each metric's change over the baseline, paired on common blocks."""
    deltas = {n: between(theirs[n]["score"], theirs[n]["leave_out"], ours[n]["score"],
                         ours[n]["leave_out"], scorer.higher_is_better(n)) for n in ours}
    record.update(deltas[scorer.primary].to_dict(), delta_baseline=baseline,
                  delta_images=ours[scorer.primary]["images"])
    for n, delta in deltas.items():
        record["metrics"][n].update(delta.to_dict(), worse=delta.worse)
    record["reversed"] = reversals(deltas, scorer.primary)


def complete(record: Mapping, names, paired: bool = True) -> bool:
    """Whether a record scores every metric of ``names`` (paired: with deltas, unless stopped).

    Records before racing lack ``images``; they are confirmed again (reusing what they can).
    """
    metrics = record.get("metrics", {})
    if "images" not in record or any(n not in metrics for n in names):
        return False
    return not paired or "stopped" in record or (
        "delta" in record and all("delta" in metrics[n] for n in names))


def reversals(deltas: Mapping[str, Delta], primary: str) -> list[str]:
    """The metrics that call a gain of ``primary`` a loss: their interval lies on the worse side.

    None when ``primary`` itself did not improve (no gain to reverse).
    """
    gain = deltas[primary]
    improved = gain.delta > 0 if gain.higher_is_better else gain.delta < 0
    return [n for n, d in deltas.items() if n != primary and improved and d.worse]
