"""Confirmation: re-score the top trials at the final sample count on fresh seeds.

A search ranks schedules by one metric on one fixed, smallish seed range, and its winner is
partly the schedule that got lucky on those seeds (and on that metric's feature network).
Before anything is called best, the top-k trials of each cell and that cell's baseline are
scored again on ``Protocol.seeds`` (disjoint from the search seeds) on the search metric and
on every ``metric.confirm`` metric, and each tuned one gets an interval for each change over
the baseline on the same seeds. Results are study attributes ``confirm/<n>@<start>/<trial>``,
so a resumed or second worker does not score a trial twice, and the numbers reach the export.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import optuna

from ..execution.evaluate import evaluate
from ..metrics.blocks import Delta, between, leave_outs
from ..metrics.scorer import Scorer
from ..models import LoadedModel
from .group import trial_label
from .notes import note_confirmation
from .record import set_study_attr
from .results import (
    Protocol,
    confirmed,
    final_score,
    per_cell,
    trial_sampler,
    trial_schedule,
)

log = logging.getLogger(__name__)


def confirm_top(study: optuna.Study, model: LoadedModel, protocol: Protocol, top_k: int,
                batch_size: int, device: str, scorer: Scorer,
                blocks: int = 10) -> dict[int, Mapping]:
    """Score every candidate not yet scored under ``protocol`` on every metric; return all.

    Each candidate's images are generated once and fed to every metric of ``scorer`` (the
    search metric first). A tuned trial's record also holds, per metric, S(tuned) -
    S(baseline) on the same seeds and its 95% jackknife interval over ``blocks`` blocks of
    seeds (``metrics.blocks``), and names the metrics on which a gain of the search metric
    reverses. Each paired score keeps its leave-one-block-out values (``leave_out``), so
    ``compare`` can pair two sweeps' schedules scored on the same seeds. A baseline confirmed
    by an earlier run without them is scored again when a new trial of its cell needs them.
    """
    names = scorer.names
    done = confirmed(study, protocol)
    k = min(blocks, protocol.seed_range.count)
    plan, kept = [], {}
    for tuned, base in per_cell(study, top_k).values():
        todo = [t for t in tuned if t.number not in done or
                (base is not None and blocks and not complete(done[t.number], names))]
        if base is not None and base.number in done and blocks \
                and complete(done[base.number], names, paired=False) \
                and pairable(done[base.number], names, k):
            kept[base.number] = done[base.number]["metrics"]  # its blocks are on record
        elif base is not None and (base.number not in done or todo
                                   or not complete(done[base.number], names, paired=False)):
            plan.append((base, None, True))
        plan += [(t, base, False) for t in todo]
    if plan:
        log.info("confirming %d trials on %d fresh images each (seeds %d..%d), on %s",
                 len(plan), protocol.seed_range.count, protocol.seed_range.start,
                 protocol.seeds[-1], ", ".join(names))
    for i, (trial, base, is_base) in enumerate(plan):
        pair = k if is_base or (base is not None and base.number in kept) else 0
        result = evaluate(model, trial_schedule(trial), trial_sampler(study, trial),
                          protocol.seeds, batch_size, device, scorer,
                          fid_infinity=protocol.fid_infinity,
                          desc=f"confirm {i + 1}/{len(plan)} (trial {trial_label(study, trial)})",
                          blocks=pair, metrics=names)
        record = final_score(result.score, result.score_infinity, protocol.seed_range,
                             scorer.primary)
        metrics = {n: {"score": v, "higher_is_better": scorer.higher_is_better(n),
                       **({"parts": result.parts[n]} if n in (result.parts or {}) else {})}
                   for n, v in (result.scores or {}).items()}
        if result.accumulators is not None:  # kept, so other sweeps can pair with it
            for n in names:
                metrics[n]["leave_out"] = leave_outs(result.accumulators[n])
        if is_base:
            kept[trial.number] = metrics
        elif result.accumulators is not None and kept.get(base.number) is not None:
            deltas = {n: between(kept[base.number][n]["score"], kept[base.number][n]["leave_out"],
                                 metrics[n]["score"], metrics[n]["leave_out"],
                                 scorer.higher_is_better(n)) for n in names}
            record.update(deltas[scorer.primary].to_dict(), delta_baseline=base.number)
            for n, delta in deltas.items():
                metrics[n].update(delta.to_dict(), worse=delta.worse)
            record["reversed"] = reversals(deltas, scorer.primary)
        record["metrics"] = metrics
        set_study_attr(study, f"{protocol.prefix}{trial.number}", record)
        note_confirmation(study, trial, record, scorer.primary)
    return confirmed(study, protocol)


def complete(record: Mapping, names, paired: bool = True) -> bool:
    """Whether a confirmation record scores every metric of ``names`` (paired: with deltas)."""
    metrics = record.get("metrics", {})
    if any(n not in metrics for n in names[1:]):
        return False
    return not paired or ("delta" in record and all("delta" in metrics[n] for n in names[1:]))


def pairable(record: Mapping, names, blocks: int) -> bool:
    """Whether a record keeps every metric's leave-one-block-out values over ``blocks``."""
    metrics = record.get("metrics", {})
    return all(len(metrics.get(n, {}).get("leave_out") or ()) == blocks for n in names)


def reversals(deltas: Mapping[str, Delta], primary: str) -> list[str]:
    """The metrics that call a gain of ``primary`` a loss: their interval lies on the worse side.

    None when ``primary`` itself did not improve (no gain to reverse).
    """
    gain = deltas[primary]
    improved = gain.delta > 0 if gain.higher_is_better else gain.delta < 0
    return [n for n, d in deltas.items() if n != primary and improved and d.worse]
