"""Workers share the cells of a sweep: each next trial goes to the cell with the fewest trials.

Every cell gets ``search.n_trials`` finished trials whatever its cost per trial, and never
more: a trial started when its cell already had that many trials ahead of it (finished,
running or queued, by trial number, which the storage hands out once) ends at once as a
surplus trial, and a trial that drew the parameters of another is skipped. Both are marked
FAIL with the reason in ``skipped``, count for nothing, and cost no images.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from ..configuration.errors import RunFailedError
from .clock import enter, phase, record_trial
from .group import cell_label, trial_label
from .record import NFE, TrialRecord, study_attrs, write
from .results import metric_label, ranking
from .study import FINISHED
from .workers import fail_orphans, this_worker

log = logging.getLogger(__name__)
optuna_log = logging.getLogger("optuna.study._optimize")  # a failed trial's warnings

TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
MAX_SKIPS = 20  # draws in a row that repeated earlier trials before a cell counts as exhausted
POLL_SECONDS = 1.0  # the longest wait between looks at the trials other workers still run


class SkippedTrialError(RuntimeError):
    """A trial that must not run: its cell is full, or another trial holds its parameters."""


def claim(trial: optuna.Trial, target: int) -> None:
    """Raise SkippedTrialError when ``target`` trials of the cell come before this one."""
    ahead = [t for t in trial.study.get_trials(deepcopy=False, states=TAKEN)
             if t.number < trial.number]
    if len(ahead) >= target:
        reason = f"surplus: the cell already has {len(ahead)} of {target} trials"
        write(trial, TrialRecord(skipped=reason))
        raise SkippedTrialError(reason)


def check_unique(trial: optuna.Trial) -> None:
    """Raise SkippedTrialError when another trial holds the same parameters.

    A queued baseline that two workers both queued runs once: a copy yields to an earlier
    copy that is queued, running or finished, and to any finished copy, so exactly one runs.
    Any other trial yields to a running or finished trial with its parameters (two that draw
    the same values at the same moment may both yield; neither runs an image).
    """
    key = TrialRecord.of(trial).baseline_key
    for other in trial.study.get_trials(deepcopy=False, states=TAKEN):
        if other.number == trial.number:
            continue
        if key is not None:
            same = TrialRecord.of(other).baseline_key == key and (
                other.number < trial.number or other.state in FINISHED)
        else:
            same = other.params == trial.params and other.state != TrialState.WAITING
        if same:
            reason = f"duplicate of trial {other.number}"
            write(trial, TrialRecord(skipped=reason, duplicate_of=other.number))
            raise SkippedTrialError(reason)


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of a cell, after failing trials whose worker is gone.

    Gone: its heartbeat stopped, or its process on this host no longer exists.
    """
    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    running = [t for t in trials if t.state == TrialState.RUNNING]
    orphans = fail_orphans(study, running)  # failed now: no longer running
    return len(trials) - len(running), len(running) - len(orphans)


def announce(study: optuna.Study, trial: FrozenTrial) -> None:
    """One line per finished or skipped trial naming its cell, and the cell's best so far."""
    skipped = TrialRecord.of(trial).skipped
    if skipped is not None:
        log.info("trial %s skipped: %s", trial_label(study, trial), skipped)
    if trial.state != TrialState.COMPLETE:
        return
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    rank, label = ranking(study), metric_label(study)
    best = min(done, key=lambda t: rank(t.values[0]))
    nfe = study_attrs(study).get(NFE)
    log.info("trial %s%s: %s %.4f; best of its cell: %s, %s %.4f", trial_label(study, trial),
             f" (NFE {nfe})" if nfe is not None else "", label, trial.values[0],
             trial_label(study, best), label, best.values[0])


def poll_seconds(study: optuna.Study) -> float | None:
    """Seconds between a finished worker's looks at other workers' trials; None: no waiting.

    A second at most: the worker's own results wait on the last trial's end, and a look costs
    a read or two per cell. None where the storage has no heartbeats: a dead worker's trial
    would be waited for forever.
    """
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return None
    return min(POLL_SECONDS, float(storage.get_heartbeat_interval()))


class QuietTrialEnds(logging.Filter):
    """Drop Optuna's two warnings (one with a traceback) on a skipped or Ctrl-C'd trial.

    ``announce`` says in one line why a trial was skipped, and the CLI reports Ctrl-C.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending = False  # the second warning of that trial is still to come

    def filter(self, record: logging.LogRecord) -> bool:
        """False for those two warnings; True for everything else."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (KeyboardInterrupt, SkippedTrialError)):
            self.pending = True
            return False
        if self.pending and "failed with value" in record.getMessage():
            self.pending = False
            return False
        return True


def recording_worker(objective: Callable) -> Callable:
    """``objective`` that first records this process on the trial (``TrialRecord.worker``)."""

    def run(trial: optuna.Trial):
        write(trial, TrialRecord(worker=this_worker()))
        return objective(trial)

    return run


def deleted_cell(studies: Sequence[optuna.Study]) -> str | None:
    """The name of a cell no longer in its storage (deleted while this worker ran), or None."""
    for study in studies:
        try:
            study._storage.get_study_id_from_name(study.study_name)
        except KeyError:
            return study.study_name
        except Exception:  # the storage itself failed: that is the error to report
            return None
    return None


def deleted_error(cell: str) -> RunFailedError:
    """The one line of a worker whose sweep was deleted under it."""
    sweep = cell.rpartition("/")[0] or cell
    return RunFailedError(f"sweep {sweep} was deleted from the storage while this worker ran "
                          f"it (its cell {cell} is gone, with its trials); the same command "
                          "starts it anew")


def finished_elsewhere(err: ValueError) -> bool:
    """Whether Optuna refused to tell a trial because another worker had already ended it.

    That happens when this worker stalled past the heartbeat's grace period (another worker
    then failed the trial as stale) or, on a storage without row locks, when two workers took
    the same queued trial; the record already stored stands.
    """
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return str(err) in {f"Cannot tell a {state.name} trial." for state in states}


class BaselineFailedError(RunFailedError):
    """A cell's baseline failed: no trial of the sweep could be compared with it."""


def note_failure(study: optuna.Study, trial: FrozenTrial, failures: list[int], i: int,
                 max_failures: int) -> None:
    """Count a failed trial of cell ``i``; a failed baseline ends the sweep at once.

    ``max_failures`` failed trials in a row close the cell for this worker, with the reason.
    """
    record = TrialRecord.of(trial)
    reason = record.fail_reason or "an error (see the log above)"
    if record.baseline:
        raise BaselineFailedError(f"the baseline of {cell_label(study)} failed ({reason}); "
                                  "every trial would fail alike, so the sweep stops: fix the "
                                  "model or sampler setting behind it and run again")
    failures[i] += 1
    if failures[i] == max_failures:
        log.warning("%s: %d trials in a row failed, the last with: %s; this worker leaves the "
                    "cell (search.max_failures)", cell_label(study), max_failures, reason)


def run_cells(studies: Sequence[optuna.Study], objectives: Sequence[Callable], target: int,
              catch: tuple[type[Exception], ...],
              before: Callable[[int], object] | None = None,
              poll: float | None = None, max_failures: int = 5) -> int:
    """Run trials, one at a time, in the least-served open cell until every cell is full.

    ``before(i)`` runs before each trial of cell ``i`` (the warm start queues trials there).
    ``poll``: when every cell is full but other workers still run trials, look again every
    ``poll`` seconds until those end (a trial whose heartbeat stopped is failed, and its retry
    run here), so that what follows sees every trial; None returns at once (a storage
    without heartbeats cannot tell a dead worker's trial from a live one). A cell whose last
    ``max_failures`` trials failed is left; a failed baseline raises BaselineFailedError.

    Returns the number of trials this process ran to the end or pruned.
    """
    skips = [0] * len(studies)
    failures = [0] * len(studies)
    ran = 0
    waiting = 0
    last: list[FrozenTrial] = []

    def remember(study: optuna.Study, trial: FrozenTrial) -> None:
        last.append(trial)
        announce(study, trial)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its lines mix cells
    quiet = QuietTrialEnds()
    optuna_log.addFilter(quiet)
    enter("loop")
    try:
        while True:
            load = [counts(s) for s in studies]
            open_cells = [i for i, (done, busy) in enumerate(load)
                          if done + busy < target and skips[i] < MAX_SKIPS
                          and failures[i] < max_failures]
            if not open_cells:
                running = sum(busy for _, busy in load)
                if running and poll is None:
                    log.warning("%d trial(s) that other workers are running are not in this "
                                "worker's results (no heartbeats to wait on); `skipsearch "
                                "export` after they end writes exports with them", running)
                if not running or poll is None:
                    return ran
                if running != waiting:
                    log.info("waiting for %d trial(s) that other workers are running (%s); "
                             "Ctrl-C stops waiting, the finished trials stay", running,
                             ", ".join(cell_label(studies[i]) for i, (_, busy)
                                       in enumerate(load) if busy))
                    waiting = running
                with phase("waiting"):
                    time.sleep(poll)
                continue
            i = min(open_cells, key=lambda i: (sum(load[i]), i))
            last.clear()
            if before is not None:
                before(i)
            started = time.time()
            try:
                with phase("trial"):
                    studies[i].optimize(recording_worker(objectives[i]), n_trials=1,
                                        catch=(*catch, SkippedTrialError), callbacks=[remember])
            except ValueError as err:
                if not finished_elsewhere(err):
                    raise
                log.warning("%s: another worker ended this trial first (%s); its record stands",
                            cell_label(studies[i]), err)
            trial = last[-1] if last else None
            record_trial(started, trial and trial.state.name)
            if trial is not None and TrialRecord.of(trial).duplicate_of is not None:
                skips[i] += 1
                if skips[i] == MAX_SKIPS:
                    log.warning("%s: %d draws in a row repeated earlier trials; the space "
                                "looks exhausted, so this worker leaves the cell",
                                cell_label(studies[i]), MAX_SKIPS)
            elif trial is not None and trial.state == TrialState.FAIL \
                    and TrialRecord.of(trial).skipped is None:
                note_failure(studies[i], trial, failures, i, max_failures)
            elif trial is not None:
                skips[i] = failures[i] = 0
                ran += trial.state in FINISHED
    except Exception:
        cell = deleted_cell(studies)  # `skipsearch studies delete` while this worker ran
        if cell is None:
            raise
    finally:
        enter("finish")
        optuna_log.removeFilter(quiet)
        optuna.logging.set_verbosity(verbosity)
    raise deleted_error(cell)  # out of the handler: the error of the deleted rows is no cause
