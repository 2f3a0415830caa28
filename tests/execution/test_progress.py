"""Progress off a terminal: a line once the interval passed, and a last line for long phases."""

from __future__ import annotations

import logging

from skipsearch.execution.progress import Progress, duration


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_long_phase_says_how_far_it_is_every_interval(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="skipsearch.execution.progress")
    progress = Progress(1000, "confirm 1/3 (trial 7)", interval=30.0, clock=clock)
    assert progress.bar is None  # pytest captures stderr: no terminal
    for _ in range(10):  # 100 images every 10 s
        clock.now += 10.0
        progress.update(100)
    progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # after 30, 60 and 90 s, and the last line
    assert lines[0] == "confirm 1/3 (trial 7): 300/1000 img (30%), 10 img/s, 1 min 10 s left"
    assert lines[-1] == "confirm 1/3 (trial 7): 1000 img in 1 min 40 s"


def test_a_short_phase_stays_quiet(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="skipsearch.execution.progress")
    progress = Progress(100, "trial 3", clock=clock)
    clock.now += 5.0
    progress.update(100)
    progress.close()
    assert caplog.records == []


def test_durations_read_as_people_write_them():
    assert duration(41.4) == "41 s" and duration(125) == "2 min 05 s"
    assert duration(float("inf")) == "?" and duration(float("nan")) == "?"
