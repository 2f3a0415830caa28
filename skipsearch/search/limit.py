"""Breaking the limit: does a tuned sampler at few NFE beat the untuned one at any NFE?

``search.limit_steps`` lists larger step counts (up to convergence); the baseline (every
rho = 1.0) of each solver is scored there once under the confirmation's protocol, on its seed
blocks, recorded as ``limit/<n>@<start>/<solver>-steps<k>`` in the sweep's first cell. The
answer is the smallest NFE whose best confirmed tuned schedule scores better than the best
baseline at any NFE measured (the cells' confirmed baselines and these), with the 95%
interval of the change on the same seeds, paired from the blocks' stored scores (recorded
as ``limit/<n>@<start>/answer``). A cell's baseline that a race stopped was scored on fewer
images and was shown worse than a tuned schedule of its own NFE; it is not a candidate for
the best baseline (the answer's record lists it under ``not_compared``).
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
from .reuse import Reuse

if TYPE_CHECKING:  # the records and the summary line are read without torch (show)
    from ..metrics.scorer import Scorer
    from ..models import LoadedModel
    from .race import Race

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
                          batch_size: int, device: str, scorer: Scorer, blocks: int,
                          reuse: Reuse | None = None) -> dict[str, Mapping]:
    """Score each solver's baseline at each of ``steps`` not scored yet; all records."""
    from .race import scored

    done = limit_records(sweep, protocol)
    identity = SkipSchedule.identity(len(model.denoiser.skips))
    race = limit_race(model, protocol, scorer, blocks, batch_size, device, reuse)
    for spec in samplers:
        for k in steps:
            cell = replace(spec, steps=int(k))
            if cell_key(cell) in done:
                continue
            values, generated = scored(race, identity, cell, sweep.cells[0],
                                       f"the baseline at {cell.nfe} NFE")
            score = values[scorer.primary]["score"]
            record = {"score": score, "nfe": cell.nfe, "steps": cell.steps,
                      "sampler": cell.to_dict(), "images": protocol.seed_range.count,
                      "generated": generated}
            set_study_attr(sweep.cells[0], prefix(protocol) + cell_key(cell), record)
            log.info("baseline %s (NFE %d): %s %.4f on %d images", cell_key(cell), cell.nfe,
                     scorer.primary, score, protocol.seed_range.count)
    return limit_records(sweep, protocol)


def limit_race(model: LoadedModel, protocol: Protocol, scorer: Scorer, blocks: int,
               batch_size: int, device: str, reuse: Reuse | None) -> Race:
    """How a limit score is made: the search metric on the protocol's seed blocks."""
    from .race import Race

    return Race(model, scorer, (scorer.primary,), protocol.seeds,
                max(2, min(blocks, protocol.seed_range.count)), batch_size, device,
                racing=False, reuse=reuse if reuse is not None else Reuse.off())


def best_baseline(sweep: Sweep, scores: Mapping[int, Mapping],
                  records: Mapping[str, Mapping]) -> dict | None:
    """The best baseline score at any NFE: the cells' confirmed ones and the limit step counts'.

    A baseline a race stopped (scored on fewer images, beaten at its NFE) does not compete.
    """
    found = []
    for t in sweep.trials:
        if TrialRecord.of(t).baseline and t.number in scores \
                and "stopped" not in scores[t.number]:
            found.append({"score": final_value(scores[t.number]),
                          "nfe": TrialRecord.of(t).nfe, "trial": t.number})
    found += [{"score": final_value(r), "nfe": r["nfe"], "key": k} for k, r in records.items()
              if k != "answer"]
    rank = ranking(sweep)
    return min(found, key=lambda r: rank(r["score"])) if found else None


def stopped_baselines(sweep: Sweep, scores: Mapping[int, Mapping]) -> list[int]:
    """The NFEs whose confirmed baseline a race stopped."""
    return sorted(TrialRecord.of(t).nfe for t in sweep.trials
                  if TrialRecord.of(t).baseline and "stopped" in scores.get(t.number, {}))


def answer(sweep: Sweep, model: LoadedModel, protocol: Protocol, scores: Mapping[int, Mapping],
           rows, batch_size: int, device: str, scorer: Scorer, blocks: int,
           reuse: Reuse | None = None) -> dict | None:
    """The smallest NFE whose confirmed best beats the best baseline anywhere, with its interval.

    ``rows`` are the summary's rows (best per NFE). Recorded, so it is computed once. Both
    scores come with their seed blocks from the stored entries when the confirmation or the
    limit baselines made them, else they are generated.
    """
    from ..metrics.blocks import between
    from .race import scored

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
              "baseline_score": target["score"], "trial": None,
              "not_compared": stopped_baselines(sweep, scores)}
    if winner is not None:
        race = limit_race(model, protocol, scorer, blocks, batch_size, device, reuse)
        trial = sweep.trials[winner.best_trial]
        schedule, spec = trial_schedule(trial), trial_sampler(sweep, trial)
        tuned, made = scored(race, schedule, spec, sweep.cells[0],
                             f"the tuned best at {winner.nfe} NFE")
        if "trial" in target:
            base_trial = sweep.trials[target["trial"]]
            schedule, spec = trial_schedule(base_trial), trial_sampler(sweep, base_trial)
        else:
            record = records[target["key"]]
            schedule = SkipSchedule.identity(len(model.denoiser.skips))
            spec = SamplerSpec.from_dict(record["sampler"], record["steps"])
        base, more = scored(race, schedule, spec, sweep.cells[0],
                            f"the baseline at {target['nfe']} NFE")
        p = scorer.primary
        delta = between(base[p]["score"], base[p]["leave_out"], tuned[p]["score"],
                        tuned[p]["leave_out"], scorer.higher_is_better())
        result.update(trial=winner.best_trial, trial_label=winner.label, nfe=winner.nfe,
                      score=winner.best_score, generated=made + more, **delta.to_dict())
    set_study_attr(sweep.cells[0], prefix(protocol) + "answer", result)
    return result


def limit_line(result: Mapping | None, label: str = "FID",
               higher_is_better: bool = False) -> str | None:
    """The summary's line about breaking the limit (``label``: the search metric's name)."""
    if result is None:
        return None
    baseline = result.get("baseline_score", result.get("baseline_fid"))
    left = result.get("not_compared") or []
    aside = (f"; the baselines a race stopped, beaten at NFE {', '.join(map(str, left))}, "
             "not compared" if left else "")
    base = (f"the best baseline at any NFE measured (NFE {result['baseline_nfe']}, "
            f"{label} {baseline:.3f}{aside})")
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
