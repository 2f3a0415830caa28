"""The Optuna objective: read params, sample with the schedule, report FID at each stage."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna

from ..errors import Terminated
from ..evaluate import evaluate
from ..metrics.fid import FIDScorer
from ..models import LoadedModel
from ..samplers.spec import SamplerSpec
from ..tracking import Tracker
from .allocate import check_unique, claim
from .record import TrialRecord, write
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
    scorer: FIDScorer
    tracker: Tracker
    stages: Sequence[int] = ()
    objectives: Sequence[str] = ("fid",)


Objective = Callable[[optuna.Trial], "float | tuple[float, float]"]


def make_objective(ctx: TrialContext, cell: SamplerSpec, target: int,
                   space: Callable[[], SearchSpace] | None = None) -> Objective:
    """An objective for one cell returning the FID (and the NFE, multi-objective) of a trial.

    A trial beyond the cell's ``target`` or repeating another's parameters is skipped first.
    ``space()`` gives the cell's current space (its bounds may widen); else ``ctx.space``.
    """
    single = len(ctx.objectives) == 1

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        claim(trial, target)
        schedule, sampler = (space() if space else ctx.space).suggest(trial, cell)
        check_unique(trial)
        write(trial, TrialRecord(nfe=sampler.nfe, steps=sampler.steps, sampler=sampler.to_dict(),
                                 coefficients=list(schedule.coefficients),
                                 schedule=schedule.to_dict()))
        stage_fids: list[list[float]] = []
        start = time.perf_counter()

        def on_stage(count: int, fid: float) -> None:
            if not math.isfinite(fid):
                reason = (f"the schedule made NaN or infinite images: FID {fid} after {count} "
                          "images")
                write(trial, TrialRecord(fail_reason=reason))
                raise NonFiniteImagesError(reason)
            if count < len(ctx.seeds) and not sys.stderr.isatty():  # lines instead of bars
                log.info("trial %d: FID %.4f after %d of %d images (%d NFE)", trial.number,
                         fid, count, len(ctx.seeds), sampler.nfe)
            stage_fids.append([count, fid])
            write(trial, TrialRecord(stage_fids=stage_fids, n_samples=count,
                                     seconds=round(time.perf_counter() - start, 3)))
            if not single:
                return
            trial.report(fid, count)
            if count < len(ctx.seeds) and not TrialRecord.of(trial).baseline \
                    and trial.should_prune():
                log_trial(ctx, trial, sampler.nfe, stage_fids, None)
                raise optuna.TrialPruned(f"FID {fid:.4g} after {count} images")

        result = evaluate(ctx.model, schedule, sampler, ctx.seeds, ctx.batch_size,
                          ctx.device, ctx.scorer, stages=ctx.stages, on_stage=on_stage)
        log_trial(ctx, trial, sampler.nfe, stage_fids, result.preview)
        return result.fid if single else (result.fid, float(sampler.nfe))

    def interruptible(trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return objective(trial)
        except KeyboardInterrupt as err:  # Optuna marks the trial FAIL; this says why
            reason = str(err) if isinstance(err, Terminated) else "interrupted (Ctrl-C)"
            write(trial, TrialRecord(fail_reason=reason))
            raise

    return interruptible


def log_trial(ctx: TrialContext, trial: optuna.Trial, nfe: int,
              stage_fids: list[list[float]], preview) -> None:
    """Send the trial's parameters, stage FIDs and (when it finished) its images to W&B.

    ``trial`` in the run's config is the trial's number in its cell study (``cell``).
    """
    count, fid = stage_fids[-1]
    metrics = {"fid": fid, "nfe": nfe, "n_samples": int(count), "pruned": preview is None}
    ctx.tracker.log_trial(trial.number, {**trial.params, "nfe": nfe,
                                         "cell": trial.study.study_name}, metrics, preview,
                          [(int(k), v) for k, v in stage_fids])
