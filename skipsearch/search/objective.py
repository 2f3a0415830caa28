"""The Optuna objective: read params, sample with the schedule, report FID."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna

from ..evaluate import SamplerSpec, evaluate
from ..metrics.fid import FIDScorer
from ..models import LoadedModel
from ..tracking import Tracker
from .space import SearchSpace


@dataclass
class TrialContext:
    """Everything a trial needs that does not change between trials."""

    model: LoadedModel
    space: SearchSpace
    sampler: SamplerSpec
    seeds: range
    batch_size: int
    device: str
    scorer: FIDScorer
    tracker: Tracker


def make_objective(ctx: TrialContext) -> Callable[[optuna.Trial], float]:
    """An objective returning the FID of the trial's schedule on the shared seeds."""

    def objective(trial: optuna.Trial) -> float:
        schedule, steps = ctx.space.suggest(trial)
        sampler = replace(ctx.sampler, steps=steps)
        start = time.perf_counter()
        result = evaluate(ctx.model, schedule, sampler, ctx.seeds, ctx.batch_size,
                          ctx.device, ctx.scorer)
        trial.set_user_attr("nfe", sampler.nfe)
        trial.set_user_attr("coefficients", list(schedule.coefficients))
        trial.set_user_attr("schedule", schedule.to_dict())
        trial.set_user_attr("n_samples", len(ctx.seeds))
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        trial.report(result.fid, len(ctx.seeds))
        ctx.tracker.log_trial(trial.number, {**trial.params, "nfe": sampler.nfe},
                              {"fid": result.fid, "nfe": sampler.nfe}, result.preview)
        return result.fid

    return objective
