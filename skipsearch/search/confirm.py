"""Confirmation: re-score the top trials at the final sample count on fresh seeds.

A search ranks schedules by FID on one fixed, smallish seed range, and its winner is partly
the schedule that got lucky on those seeds. Before anything is called best, the top-k trials
of each cell and that cell's baseline are scored again on ``Protocol.seeds`` (disjoint from
the search seeds), and each tuned one gets an interval for its FID change over the baseline
on the same seeds. Results are study attributes ``confirm/<n>@<start>/<trial>``, so a resumed
or second worker does not score a trial twice, and the numbers reach the export.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import optuna

from ..evaluate import evaluate
from ..metrics.blocks import paired_delta
from ..metrics.fid import FIDScorer
from ..models import LoadedModel
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
                batch_size: int, device: str, scorer: FIDScorer,
                blocks: int = 10) -> dict[int, Mapping]:
    """Score every candidate not yet scored under ``protocol``; return all records.

    A tuned trial's record also holds FID(tuned) - FID(baseline) on the same seeds and its
    95% jackknife interval over ``blocks`` blocks of seeds (``metrics.blocks``); the block
    sums live in memory only, so a baseline confirmed by an earlier run is scored again when
    a new trial of its cell needs the pairing.
    """
    done = confirmed(study, protocol)
    plan = []
    for tuned, base in per_cell(study, top_k).values():
        todo = [t for t in tuned if t.number not in done or
                (base is not None and blocks and "delta" not in done[t.number])]
        if base is not None and (base.number not in done or todo):
            plan.append((base, None, True))
        plan += [(t, base, False) for t in todo]
    if plan:
        log.info("confirming %d trials on %d fresh images each (seeds %d..%d)", len(plan),
                 protocol.seed_range.count, protocol.seed_range.start, protocol.seeds[-1])
    sums = {}
    for i, (trial, base, is_base) in enumerate(plan):
        pair = blocks if is_base or (base is not None and base.number in sums) else 0
        result = evaluate(model, trial_schedule(trial), trial_sampler(study, trial),
                          protocol.seeds, batch_size, device, scorer,
                          fid_infinity=protocol.fid_infinity,
                          desc=f"confirm {i + 1}/{len(plan)} (trial {trial.number})",
                          blocks=min(pair, protocol.seed_range.count))
        record = final_score(result.fid, result.fid_infinity, protocol.seed_range)
        if is_base:
            sums[trial.number] = result.blocks
        elif result.blocks is not None and sums.get(base.number) is not None:
            delta = paired_delta(result.blocks, sums[base.number], scorer.reference)
            record.update(delta.to_dict(), delta_baseline=base.number)
        study.set_user_attr(f"{protocol.prefix}{trial.number}", record)
    return confirmed(study, protocol)
