"""Progress of a long phase: a bar on a terminal, a log line every 30 s off one.

Off a terminal (a log file, a SLURM job, ``make sweep > log``) tqdm's bars are off, and a
confirmation of 50k images would say nothing for many minutes. There, a phase logs how far it
is (done, rate, time left) once ``interval`` seconds have passed since its start or its last
line, and a last line when it took longer than that.
"""

from __future__ import annotations

import logging
import math
import sys
import time

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def on_terminal() -> bool:
    """Whether stderr is a terminal (where tqdm draws its bars)."""
    return sys.stderr.isatty()


class Progress:
    """Counts done units of a phase: a tqdm bar on a terminal, else timed log lines."""

    def __init__(self, total: int, desc: str, unit: str = "img", interval: float = 30.0,
                 clock=time.monotonic) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.clock = clock
        self.done = 0
        self.start = self.last = clock()
        self.lines = 0
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False) if on_terminal() \
            else None

    def update(self, n: int) -> None:
        """Count ``n`` more units done; off a terminal, log a line if the interval passed."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = self.clock()
        if now - self.last >= self.interval and self.done < self.total:
            self.report(now)

    def report(self, now: float) -> None:
        """Log how far the phase is: done of total, rate and time left."""
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        log.info("%s: %d/%d %s (%.0f%%), %.3g %s/s, %s left", self.desc, self.done, self.total,
                 self.unit, 100 * self.done / max(self.total, 1), rate, self.unit,
                 duration(left))
        self.last = now
        self.lines += 1

    def close(self) -> None:
        """End the phase: close the bar, or log its total time if it was a long one."""
        if self.bar is not None:
            self.bar.close()
            return
        elapsed = self.clock() - self.start
        if elapsed >= self.interval:
            log.info("%s: %d %s in %s", self.desc, self.done, self.unit, duration(elapsed))
            self.lines += 1


def duration(seconds: float) -> str:
    """``2 min 05 s``, ``41 s``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
