"""The Optuna objective: read params, sample with the schedule, report the score at each stage."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna

from ..configuration.errors import Terminated
from ..execution.evaluate import evaluate
from ..execution.seed_range import SeedRange
from ..metrics.scorer import Scorer
from ..models import LoadedModel
from ..samplers.spec import SamplerSpec
from ..tracking import Tracker
from .allocate import check_unique, claim
from .group import trial_label
from .record import TrialRecord, write
from .reuse import Reuse, digest
from .space import SearchSpace

log = logging.getLogger(__name__)


class NonFiniteImagesError(RuntimeError):
    """A trial's images held NaN or inf; the trial fails, the study goes on."""


TRIAL_ERRORS = (NonFiniteImagesError,)  # failures that end a trial but not the study


@dataclass
class TrialContext:
    """Everything a trial needs that does not change between trials."""

    model: LoadedModel
    space: SearchSpace
    seeds: range
    batch_size: int
    device: str
    scorer: Scorer
    tracker: Tracker
    stages: Sequence[int] = ()
    objectives: Sequence[str] = ()  # metric names or nfe; () is the scorer's primary alone
    reuse: Reuse | None = None  # stored scores: a cell's baseline is taken from them

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics a trial scores: its objectives' (the search metric first)."""
        return tuple(o for o in self.objectives if o != "nfe") or (self.scorer.primary,)


Objective = Callable[[optuna.Trial], "float | tuple[float, float]"]


def make_objective(ctx: TrialContext, cell: SamplerSpec, target: int,
                   space: Callable[[], SearchSpace] | None = None) -> Objective:
    """An objective for one cell: a trial's search score (and its NFE or a second metric).

    A trial beyond the cell's ``target`` or repeating another's parameters is skipped first.
    ``space()`` gives the cell's current space (its bounds may widen); else ``ctx.space``.
    """
    single = len(ctx.objectives) <= 1
    label = ctx.scorer.primary

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        claim(trial, target)
        schedule, sampler = (space() if space else ctx.space).suggest(trial, cell)
        check_unique(trial)
        write(trial, TrialRecord(nfe=sampler.nfe, steps=sampler.steps, sampler=sampler.to_dict(),
                                 coefficients=list(schedule.coefficients),
                                 schedule=schedule.to_dict()))
        stage_scores: list[list[float]] = []
        start = time.perf_counter()

        def on_stage(count: int, score: float) -> None:
            if not math.isfinite(score):
                reason = (f"the schedule made NaN or infinite images: {label} {score} after "
                          f"{count} images")
                write(trial, TrialRecord(fail_reason=reason))
                raise NonFiniteImagesError(reason)
            if count < len(ctx.seeds) and not sys.stderr.isatty():  # lines instead of bars
                log.info("trial %s: %s %.4f after %d of %d images (%d NFE)",
                         trial_label(trial.study, trial), label, score, count, len(ctx.seeds),
                         sampler.nfe)
            stage_scores.append([count, score])
            write(trial, TrialRecord(stage_scores=stage_scores, n_samples=count,
                                     seconds=round(time.perf_counter() - start, 3)))
            if not single:
                return
            trial.report(score, count)
            if count < len(ctx.seeds) and not TrialRecord.of(trial).baseline \
                    and trial.should_prune():
                log_trial(ctx, trial, sampler, stage_scores, None)
                raise optuna.TrialPruned(f"{label} {score:.4g} after {count} images")

        baseline = TrialRecord.of(trial).baseline and ctx.reuse is not None
        keys = baseline_keys(ctx, schedule, sampler) if baseline else {}
        known = ctx.reuse.get(keys) if baseline else None
        if known is not None and all(str(k) in known[label].get("stages", {})
                                     for k in ctx.stages if 0 < k < len(ctx.seeds)):
            ctx.reuse.note(f"the baseline of {trial_label(trial.study, trial)}", len(ctx.seeds))
            for count, score in sorted((int(c), v) for c, v in known[label]["stages"].items()):
                on_stage(count, score)
            write(trial, TrialRecord(reused=digest(keys[label])))
            score, scores, preview = known[label]["score"], {
                n: v["score"] for n, v in known.items()}, None
        else:
            result = evaluate(ctx.model, schedule, sampler, ctx.seeds, ctx.batch_size,
                              ctx.device, ctx.scorer, stages=ctx.stages, on_stage=on_stage,
                              metrics=ctx.metrics,
                              desc=f"trial {trial_label(trial.study, trial)}")
            score, scores, preview = result.score, result.scores, result.preview
            if baseline:
                ctx.reuse.put(trial.study, keys, {n: {
                    "score": v, "blocks_done": 0, "images": len(ctx.seeds),
                    "stages": {str(c): s for c, s in stage_scores} if n == label else {},
                    "what": f"the baseline of {trial_label(trial.study, trial)}"}
                    for n, v in scores.items()})
        if len(ctx.metrics) > 1:
            write(trial, TrialRecord(scores=scores))
        log_trial(ctx, trial, sampler, stage_scores, preview, scores, pruned=False)
        if single:
            return score
        second = ctx.objectives[1]
        return score, float(sampler.nfe if second == "nfe" else scores[second])

    def interruptible(trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return objective(trial)
        except KeyboardInterrupt as err:  # Optuna marks the trial FAIL; this says why
            reason = str(err) if isinstance(err, Terminated) else "interrupted (Ctrl-C)"
            write(trial, TrialRecord(fail_reason=reason))
            raise

    return interruptible


def baseline_keys(ctx: TrialContext, schedule, sampler: SamplerSpec) -> dict[str, dict]:
    """The reuse keys of a baseline's scores on the search seeds, one per objective metric."""
    seeds = SeedRange(ctx.seeds.start, len(ctx.seeds))
    return ctx.reuse.keys(schedule, sampler, seeds, 0,
                          {n: ctx.scorer.metrics[n].provenance() for n in ctx.metrics})


def log_trial(ctx: TrialContext, trial: optuna.Trial, sampler: SamplerSpec,
              stage_scores: list[list[float]], preview,
              scores: dict[str, float] | None = None, pruned: bool = True) -> None:
    """Send the trial's parameters, stage scores and (when it finished) its images to W&B.

    The run is named as logs and tables name the trial (``heun-steps6#8``); its config holds
    the trial's own sampler (steps, NFE), cell and number there. The search metric is logged
    as ``score`` and under its own name, like every other metric.
    """
    count, score = stage_scores[-1]
    metrics = {"score": score, ctx.scorer.primary: score, **(scores or {}), "nfe": sampler.nfe,
               "n_samples": int(count), "pruned": pruned}
    config = {**trial.params, "nfe": sampler.nfe, "steps": sampler.steps,
              "sampler": {**sampler.to_dict(), "steps": sampler.steps},
              "cell": trial.study.study_name,
              "cell_trial": trial.number}
    ctx.tracker.log_trial(trial_label(trial.study, trial), config, metrics, preview,
                          [(int(k), v) for k, v in stage_scores])
