"""Breaking the limit: does a tuned sampler at few NFE beat the untuned one at any NFE?

``search.limit_steps`` lists larger step counts (up to convergence); the baseline (every
rho = 1.0) of each solver is scored there once under the confirmation's protocol, recorded
as ``limit/<n>@<start>/<solver>-steps<k>`` in the sweep's first cell. The answer is the
smallest NFE whose best confirmed tuned schedule scores better than the best baseline at
any NFE measured (the cells' confirmed baselines and these), with the 95% interval of the
change on the same seeds; both are scored again with seed blocks for it (once: the answer is
recorded as ``limit/<n>@<start>/answer``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..samplers.spec import SamplerSpec
from ..tuning.schedule import SkipSchedule
from .group import Sweep, cell_key
from .record import LIMIT_PREFIX, TrialRecord, set_study_attr, study_attrs
from .results import Protocol, final_value, ranking, trial_sampler, trial_schedule

if TYPE_CHECKING:  # the records and the summary line are read without torch (show)
    from ..metrics.scorer import Scorer
    from ..models import LoadedModel

log = logging.getLogger(__name__)


def prefix(protocol: Protocol) -> str:
    """Attribute prefix of the limit records made under ``protocol``."""
    return f"{LIMIT_PREFIX}{protocol.seed_range.count}@{protocol.seed_range.start}/"


def limit_records(sweep: Sweep, protocol: Protocol) -> dict[str, Mapping]:
    """Every record under ``protocol`` (cell key -> baseline score, and ``answer``)."""
    head = prefix(protocol)
    return {k.removeprefix(head): v for cell in sweep.cells
            for k, v in study_attrs(cell).items() if k.startswith(head)}


def limit_scores(sweep: Sweep, protocol: Protocol | None) -> dict[int, float]:
    """NFE -> the baseline's score at each limit step count measured (none without protocol)."""
    records = limit_records(sweep, protocol) if protocol is not None else {}
    return {r["nfe"]: final_value(r) for k, r in records.items() if k != "answer"}


def score_limit_baselines(sweep: Sweep, model: LoadedModel, protocol: Protocol,
                          samplers: Sequence[SamplerSpec], steps: Sequence[int],
                          batch_size: int, device: str, scorer: Scorer) -> dict[str, Mapping]:
    """Score each solver's baseline at each of ``steps`` not scored yet; all records."""
    from ..execution.evaluate import evaluate

    done = limit_records(sweep, protocol)
    identity = SkipSchedule.identity(len(model.denoiser.skips))
    for spec in samplers:
        for k in steps:
            cell = replace(spec, steps=int(k))
            if cell_key(cell) in done:
                continue
            result = evaluate(model, identity, cell, protocol.seeds, batch_size, device, scorer,
                              desc=f"baseline at {cell.nfe} NFE")
            record = {"score": result.score, "nfe": cell.nfe, "steps": cell.steps,
                      "sampler": cell.to_dict()}
            set_study_attr(sweep.cells[0], prefix(protocol) + cell_key(cell), record)
            log.info("baseline %s (NFE %d): %s %.4f on %d images", cell_key(cell), cell.nfe,
                     scorer.primary, result.score, protocol.seed_range.count)
    return limit_records(sweep, protocol)


def best_baseline(sweep: Sweep, scores: Mapping[int, Mapping],
                  records: Mapping[str, Mapping]) -> dict | None:
    """The best confirmed baseline score at any NFE: the cells' and the limit step counts'."""
    found = []
    for t in sweep.trials:
        if TrialRecord.of(t).baseline and t.number in scores:
            found.append({"score": final_value(scores[t.number]),
                          "nfe": TrialRecord.of(t).nfe, "trial": t.number})
    found += [{"score": final_value(r), "nfe": r["nfe"], "key": k} for k, r in records.items()
              if k != "answer"]
    rank = ranking(sweep)
    return min(found, key=lambda r: rank(r["score"])) if found else None


def answer(sweep: Sweep, model: LoadedModel, protocol: Protocol, scores: Mapping[int, Mapping],
           rows, batch_size: int, device: str, scorer: Scorer, blocks: int) -> dict | None:
    """The smallest NFE whose confirmed best beats the best baseline anywhere, with its interval.

    ``rows`` are the summary's rows (best per NFE). Recorded, so it is computed once.
    """
    from ..execution.evaluate import evaluate
    from ..metrics.blocks import paired_delta

    records = limit_records(sweep, protocol)
    target = best_baseline(sweep, scores, records)
    if target is None:
        return None
    rank = ranking(sweep)
    winner = next((r for r in sorted(rows, key=lambda r: r.nfe)
                   if r.confirmed and rank(r.best_score) < rank(target["score"])
                   and not TrialRecord.of(sweep.trials[r.best_trial]).baseline), None)
    key = (winner.best_trial if winner else None, target.get("trial", target.get("key")))
    old = records.get("answer")
    if old is not None and (old.get("trial"), old.get("baseline")) == key:
        return old
    result = {"baseline": key[1], "baseline_nfe": target["nfe"],
              "baseline_score": target["score"], "trial": None}
    if winner is not None:
        trial = sweep.trials[winner.best_trial]
        tuned = evaluate(model, trial_schedule(trial), trial_sampler(sweep, trial),
                         protocol.seeds, batch_size, device, scorer, blocks=blocks,
                         desc=f"limit: tuned at {winner.nfe} NFE").accumulators
        if "trial" in target:
            base_trial = sweep.trials[target["trial"]]
            schedule, spec = trial_schedule(base_trial), trial_sampler(sweep, base_trial)
        else:
            record = records[target["key"]]
            schedule = SkipSchedule.identity(len(model.denoiser.skips))
            spec = SamplerSpec.from_dict(record["sampler"], record["steps"])
        base = evaluate(model, schedule, spec, protocol.seeds, batch_size, device, scorer,
                        blocks=blocks, desc=f"limit: baseline at {target['nfe']} NFE"
                        ).accumulators
        primary = scorer.primary
        delta = paired_delta(tuned[primary], base[primary], scorer.higher_is_better())
        result.update(trial=winner.best_trial, trial_label=winner.label, nfe=winner.nfe,
                      score=winner.best_score, **delta.to_dict())
    set_study_attr(sweep.cells[0], prefix(protocol) + "answer", result)
    return result


def limit_line(result: Mapping | None, label: str = "FID",
               higher_is_better: bool = False) -> str | None:
    """The summary's line about breaking the limit (``label``: the search metric's name)."""
    if result is None:
        return None
    baseline = result.get("baseline_score", result.get("baseline_fid"))
    base = (f"the best baseline at any NFE measured (NFE {result['baseline_nfe']}, "
            f"{label} {baseline:.3f})")
    if result.get("trial") is None:
        return f"breaking the limit: no tuned schedule beats {base}"
    low, high = result["delta_ci95"]
    sure = "" if (low > 0 if higher_is_better else high < 0) else \
        "; not significant: the interval reaches zero"
    score = result.get("score", result.get("fid"))
    trial = result.get("trial_label") or result["trial"]
    return (f"breaking the limit: tuned at NFE {result['nfe']} ({label} {score:.3f}, trial "
            f"{trial}) beats {base}: change {result['delta']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] (95%){sure}")
