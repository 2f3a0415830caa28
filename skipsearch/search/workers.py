"""Which process runs a trial, so that a trial whose worker is gone is failed at once.

A worker records itself on each trial it starts (``TrialRecord.worker``: host name, process
id, the process's start time, the boot and PID namespace it runs in). A worker on the same
host that finds a RUNNING trial whose process no longer exists (a resumed sweep after SIGKILL,
a second worker) fails it with the reason, and where the storage retries stale trials its
retry is queued, as for a trial whose heartbeat stopped, without waiting out the grace
period. Trials of other hosts, or where the process cannot be told apart, are left to the
heartbeats. The start time guards against a process id the system handed out again.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from .group import trial_label
from .record import TrialRecord

log = logging.getLogger(__name__)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and start time (clock ticks after boot); None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold ')'
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


@functools.cache
def boot_id() -> str | None:
    """The id of this boot of the host (Linux); None where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def pid_namespace() -> str | None:
    """This process's PID namespace (Linux), e.g. ``pid:[4026531836]``; None elsewhere."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def this_worker() -> dict[str, object]:
    """This process as a trial records it: host, pid, start time, boot and PID namespace."""
    pid = os.getpid()
    stat = proc_stat(pid)
    return {"host": socket.gethostname(), "pid": pid, "started": stat and stat[1],
            "boot": boot_id(), "pidns": pid_namespace()}


def same_machine(worker: Mapping) -> bool:
    """Whether the process ids of ``worker`` name the processes seen here.

    The same host name, boot (two machines may share a name, and both run in the first PID
    namespace, whose number is the same everywhere) and PID namespace (a container's own).
    """
    me = this_worker()
    return all(worker.get(key) == me[key] for key in ("host", "boot", "pidns"))


def gone(worker: object) -> bool:
    """Whether the process a trial recorded has surely ended; False when that cannot be told."""
    if not isinstance(worker, Mapping) or not same_machine(worker):
        return False  # after a restart of its host too: the heartbeats tell that
    pid = worker.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # a process of another user holds that id
    except OSError:
        return False
    stat = proc_stat(pid)
    if stat is None:
        return False
    state, started = stat
    recorded = worker.get("started")
    return state in ("Z", "X") or (isinstance(recorded, int) and started != recorded)


def gone_reason(worker: Mapping) -> str:
    """The failure reason of a trial whose worker is gone."""
    return f"its worker (host {worker.get('host')}, pid {worker.get('pid')}) is gone"


def fail_orphans(study: optuna.Study, running: Sequence[FrozenTrial]) -> list[int]:
    """Fail those of ``study``'s RUNNING trials whose worker process is gone; their numbers.

    ``running``: the trials as the caller just read them. Each failed trial gets the reason
    in ``fail_reason``; where the storage retries trials whose heartbeat stopped, the same
    callback queues a retry (up to ``storage.max_retry``).
    """
    storage = study._storage
    failed = []
    for trial in running:
        worker = TrialRecord.of(trial).worker
        if worker is None or not gone(worker):
            continue
        reason = gone_reason(worker)
        try:
            storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker ended it first
        failed.append(trial.number)
        log.warning("trial %s failed: %s", trial_label(study, trial), reason)
        retry = (storage.get_heartbeat_stale_trial_callback()
                 if is_heartbeat_enabled(storage) else None)
        if retry is not None:
            retry(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
    return failed
