"""Where a worker's time goes: an instrument for benchmarks, off unless asked for.

``WorkerClock`` charges the main thread's wall and CPU time to phases (start-up, reference
statistics, storage calls, waiting, trials) and writes them as JSON when the process ends, if
the environment variable ``SKIPSEARCH_WORKER_TIMINGS`` names a folder (``benchmarks/workers.py``
sets it). Unset, every function here does nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna

TIMINGS = "SKIPSEARCH_WORKER_TIMINGS"  # a folder: each worker writes <pid>.json there at exit


class WorkerClock:
    """The wall and CPU seconds of this process's main thread, by phase.

    Each moment is charged to the innermost open phase, else to the base phase (``startup``
    until the trials begin, then ``loop``, then ``finish``), so the phases add up to the time
    since the clock started; other threads (heartbeats) are not counted. Storage calls are
    also counted by method (outermost calls only), and each trial's span is kept.
    """

    def __init__(self) -> None:
        self.started = time.time()  # epoch seconds, comparable across processes
        self.base = "startup"
        self.stack: list[str] = []
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, list[float]] = {}  # storage method: [calls, seconds]
        self.trials: list[dict[str, object]] = []
        self.marks: dict[str, float] = {}  # epoch second each base phase began
        self._last = (time.perf_counter(), time.thread_time())

    def _charge(self) -> None:
        now = (time.perf_counter(), time.thread_time())
        name = self.stack[-1] if self.stack else self.base
        self.wall[name] = self.wall.get(name, 0.0) + now[0] - self._last[0]
        self.cpu[name] = self.cpu.get(name, 0.0) + now[1] - self._last[1]
        self._last = now

    def enter(self, base: str) -> None:
        """Charge what follows, outside any phase, to ``base`` (on the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._charge()
        self.base = base
        self.marks.setdefault(base, time.time())

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the main thread's time inside the block to ``name``."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._charge()
        self.stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self.stack.pop()

    def storage_call(self, method: str, call: Callable[..., Any], /, *args: Any,
                     **kwargs: Any) -> Any:
        """``call(*args, **kwargs)`` charged to ``storage`` and counted under ``method``."""
        if threading.current_thread() is not threading.main_thread():
            return call(*args, **kwargs)
        outer = "storage" not in self.stack
        start = time.perf_counter()
        try:
            with self.phase("storage"):
                return call(*args, **kwargs)
        finally:
            if outer:
                count = self.calls.setdefault(method, [0, 0.0])
                count[0] += 1
                count[1] += time.perf_counter() - start

    def trial(self, start: float, state: str | None) -> None:
        """Keep a trial's span (epoch seconds, from ``start`` to now) and its end state."""
        self.trials.append({"start": start, "end": time.time(), "state": state})

    def to_dict(self) -> dict[str, object]:
        """Everything measured, with the process's CPU seconds on all threads."""
        self._charge()
        return {"pid": os.getpid(), "started": self.started, "ended": time.time(),
                "wall": self.wall, "cpu": self.cpu, "process_cpu": time.process_time(),
                "storage_calls": self.calls, "trials": self.trials, "marks": self.marks}

    def write(self, folder: Path) -> None:
        """Write ``to_dict()`` to ``folder/<pid>.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{os.getpid()}.json").write_text(json.dumps(self.to_dict(), indent=1))


CLOCK: WorkerClock | None = None
if os.environ.get(TIMINGS):
    CLOCK = WorkerClock()
    atexit.register(CLOCK.write, Path(os.environ[TIMINGS]))


def phase(name: str) -> contextlib.AbstractContextManager:
    """``CLOCK.phase(name)`` when timings are asked for; else a context that does nothing."""
    return CLOCK.phase(name) if CLOCK is not None else contextlib.nullcontext()


def enter(base: str) -> None:
    """``CLOCK.enter(base)`` when timings are asked for."""
    if CLOCK is not None:
        CLOCK.enter(base)


def record_trial(start: float, state: str | None) -> None:
    """``CLOCK.trial(start, state)`` when timings are asked for."""
    if CLOCK is not None:
        CLOCK.trial(start, state)


def timed_storage(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """``storage`` with each of its methods charged to the clock's ``storage`` phase.

    Unchanged when no timings are asked for. Its private methods are timed too: Optuna's
    cache in front of an RDB storage calls them.
    """
    if CLOCK is None:
        return storage
    for name in dir(type(storage)):
        if name.startswith("__") or not callable(getattr(type(storage), name, None)):
            continue
        method = getattr(storage, name)
        if not hasattr(method, "__self__"):  # a static method or a class
            continue
        setattr(storage, name, functools.partial(CLOCK.storage_call, name, method))
    return storage
