"""Window study: one schedule restricted to each of K consecutive noise windows of a sampler.

Ma et al. (2024) apply Skip-Tuning within one window of noise levels at a time and compare the
FID of each with the untuned and the fully tuned sampler, to see where the gain comes from.
A window is ``width`` consecutive levels t_a > ... > t_b of the discretization (the levels the
network is evaluated at; the final 0 never is); the schedule's window becomes [t_b, t_a], so
exactly the network evaluations at those levels are tuned. Every run uses the same seeds.

    skipsearch windows skip.params.rho_top=0.8 skip.params.rho_bottom=0.8 windows.width=2
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..execution.evaluate import evaluate
from ..metrics.scorer import Scorer
from ..models import LoadedModel
from ..samplers.spec import SamplerSpec
from ..tuning.schedule import SkipSchedule
from .table import write_csv

CSV_COLUMNS = ("kind", "window", "first_step", "last_step", "sigma_hi", "sigma_lo",
               "fid", "fid_baseline", "change", "relative_change", "change_low", "change_high",
               "n_samples")


@dataclass(frozen=True)
class NoiseWindow:
    """Levels ``first_step`` .. ``last_step`` (indices i of t_i) and their noise range."""

    index: int
    first_step: int
    last_step: int
    sigma_hi: float
    sigma_lo: float

    @property
    def sigma_mid(self) -> float:
        """The geometric middle of the window (where the figure places it)."""
        return math.sqrt(self.sigma_hi * self.sigma_lo)


def evaluated_levels(sigmas: torch.Tensor) -> list[float]:
    """The noise levels t_0 > t_1 > ... the network sees (the discretization without its 0)."""
    return [float(s) for s in sigmas if float(s) > 0]


def noise_windows(levels: Sequence[float], width: int, count: int | None = None
                  ) -> list[NoiseWindow]:
    """``count`` windows of ``width`` consecutive levels from the highest noise level down.

    ``count=None`` covers every level; the last window is then shorter when ``width`` does
    not divide their number. ValueError when ``count`` windows do not fit.
    """
    if width < 1:
        raise ValueError(f"window width {width} must be >= 1")
    n = len(levels)
    fitting = math.ceil(n / width) if count is None else count
    if count is not None and count * width > n:
        raise ValueError(f"{count} windows of {width} levels need {count * width} levels; "
                         f"the sampler has {n}")
    windows = []
    for k in range(fitting):
        first, last = k * width, min(k * width + width, n) - 1
        windows.append(NoiseWindow(k, first, last, float(levels[first]), float(levels[last])))
    return windows


def restricted(schedule: SkipSchedule, window: NoiseWindow) -> SkipSchedule:
    """``schedule`` applied only at the levels of ``window`` (its profile kept)."""
    return replace(schedule, window=(window.sigma_lo, window.sigma_hi))


@dataclass(frozen=True)
class WindowRow:
    """The FID of one run of the study and its change from the baseline.

    ``change_interval`` is the 95% interval of ``change`` where one was computed (paired,
    over seed blocks); None until the study's interval estimator fills it in.
    """

    kind: str  # baseline | full | window
    fid: float
    fid_baseline: float
    n_samples: int
    window: NoiseWindow | None = None
    change_interval: tuple[float, float] | None = None

    @property
    def change(self) -> float:
        """FID minus the baseline's FID (negative: the schedule helps)."""
        return self.fid - self.fid_baseline

    @property
    def relative_change(self) -> float:
        """The change as a fraction of the baseline's FID."""
        return self.change / self.fid_baseline if self.fid_baseline else math.nan


def run_window_study(model: LoadedModel, schedule: SkipSchedule, sampler: SamplerSpec,
                     windows: Sequence[NoiseWindow], seeds: Sequence[int], batch_size: int,
                     device: torch.device | str, scorer: Scorer, baseline: float | None = None,
                     on_row: Callable[[WindowRow], None] | None = None) -> list[WindowRow]:
    """FID of the baseline, of ``schedule`` everywhere, and of it within each window.

    ``baseline``: the baseline's score on these seeds when it is known (stored by a sweep).
    """
    k = len(schedule.coefficients)

    def fid_of(s: SkipSchedule, desc: str) -> float:  # preview=1: the least evaluate keeps
        return float(evaluate(model, s, sampler, seeds, batch_size, device, scorer,
                              preview=1, desc=desc).score)

    base = baseline if baseline is not None else fid_of(SkipSchedule.identity(k), "baseline")
    rows = [WindowRow("baseline", base, base, len(seeds)),
            WindowRow("full", fid_of(replace(schedule, window=None), "full range"), base,
                      len(seeds))]
    for row in rows:
        if on_row is not None:
            on_row(row)
    for w in windows:
        fid = fid_of(restricted(schedule, w), f"window {w.index + 1}/{len(windows)}")
        rows.append(WindowRow("window", fid, base, len(seeds), w))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def _number(value: float | None) -> str:
    """A CSV cell: repr-exact floats, empty for a missing value."""
    return "" if value is None else repr(float(value))


def write_window_csv(rows: Sequence[WindowRow], path: Path) -> Path:
    """One line per run with the columns of ``CSV_COLUMNS``."""
    return write_csv(path, CSV_COLUMNS, (window_cells(r) for r in rows))


def window_cells(r: WindowRow) -> list[object]:
    """The CSV cells of one run, empty where a value is missing."""
    w = r.window
    low, high = r.change_interval or (None, None)
    return [r.kind, "" if w is None else w.index,
            "" if w is None else w.first_step, "" if w is None else w.last_step,
            _number(w and w.sigma_hi), _number(w and w.sigma_lo), _number(r.fid),
            _number(r.fid_baseline), _number(r.change), _number(r.relative_change),
            _number(low), _number(high), r.n_samples]


def read_window_csv(path: Path) -> list[WindowRow]:
    """Rows written by ``write_window_csv``."""
    rows = []
    with path.open(newline="") as f:
        for line in csv.DictReader(f):
            window = None
            if line["kind"] == "window":
                window = NoiseWindow(int(line["window"]), int(line["first_step"]),
                                     int(line["last_step"]), float(line["sigma_hi"]),
                                     float(line["sigma_lo"]))
            interval = ((float(line["change_low"]), float(line["change_high"]))
                        if line["change_low"] else None)
            rows.append(WindowRow(line["kind"], float(line["fid"]), float(line["fid_baseline"]),
                                  int(line["n_samples"]), window, interval))
    return rows
