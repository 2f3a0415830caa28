"""FID-infinity (Chong & Forsyth, CVPR 2020): FID extrapolated to infinitely many samples.

FID_N is biased, and to first order the bias is linear in 1/N. Their protocol measures FID at
15 sample counts evenly spaced from N_max / 10 to N_max, fits FID_N = a + b / N by least squares
and reports the intercept a (the value at 1/N = 0) as FID-infinity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def infinity_counts(n: int, points: int = 15) -> list[int]:
    """Sorted unique sample counts, ``points`` evenly spaced from max(2, n // 10) to n.

    Rounding to integers can merge neighbours, so small ``n`` gives fewer counts; n >= 2 and
    points >= 2 are required (ValueError otherwise).
    """
    if n < 2 or points < 2:
        raise ValueError(f"need n >= 2 and points >= 2, got n={n}, points={points}")
    lo, steps = max(2, n // 10), points - 1
    # Integer rounding to nearest, so both ends are exact.
    return sorted({lo + ((n - lo) * i + steps // 2) // steps for i in range(points)})


@dataclass(frozen=True)
class FIDInfinity:
    """The fit FID_N = value + slope / N and the points it was fitted to."""

    value: float
    slope: float
    counts: tuple[int, ...]
    fids: tuple[float, ...]


def fid_infinity(counts: Sequence[int], fids: Sequence[float]) -> FIDInfinity:
    """Least-squares fit of FID_N = a + b / N in float64; a is FID-infinity."""
    if len(counts) != len(fids):
        raise ValueError(f"got {len(counts)} counts but {len(fids)} FIDs")
    if any(n < 1 for n in counts):
        raise ValueError(f"sample counts must be positive, got {list(counts)}")
    if len(set(counts)) < 2:
        raise ValueError(f"the fit needs at least 2 distinct sample counts, got {list(counts)}")
    x = 1.0 / np.asarray(counts, dtype=np.float64)
    y = np.asarray(fids, dtype=np.float64)
    # Centred normal equations of the line y = a + b x.
    dx, dy = x - x.mean(), y - y.mean()
    b = float((dx * dy).sum() / (dx * dx).sum())
    a = float(y.mean() - b * x.mean())
    return FIDInfinity(a, b, tuple(int(n) for n in counts), tuple(float(f) for f in fids))
