"""How sure a confirmed change is: a jackknife over blocks of seeds, for any statistic.

A confirmation scores a tuned schedule and its baseline on the same seeds, so their images
are paired. The seeds are cut into K consecutive blocks and each statistic's accumulator keeps
what it needs per block (feature sums for a Frechet distance, features for KID and precision
and recall, per-image scores for CLIP score), in memory only. No statistic here is additive
over images, but each can be recomputed with one block left out. The delete-a-group jackknife
of delta = S(tuned) - S(baseline) over those K leave-one-block-out values gives a standard
error; the 95% interval is delta +- t(0.975, K - 1) * se. Pairing cancels most of the noise
the two scores share. A record keeps each score's leave-one-block-out values (``leave_outs``),
so two schedules scored on the same seed blocks, even in different sweeps, are paired later
(``between``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-free here: ``compare`` pairs recorded values without torch
    from .statistic import Accumulator


def t_quantile(df: int, p: float = 0.975) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Delta:
    """S(tuned) - S(baseline) on paired images and its 95% jackknife interval."""

    delta: float
    low: float
    high: float
    blocks: int
    higher_is_better: bool = False

    @property
    def significant(self) -> bool:
        """True when the whole interval lies on the better side of zero (a real improvement)."""
        return self.low > 0 if self.higher_is_better else self.high < 0

    @property
    def worse(self) -> bool:
        """True when the whole interval lies on the worse side of zero (a real loss)."""
        return self.high < 0 if self.higher_is_better else self.low > 0

    def to_dict(self) -> dict:
        """The record's fields: delta, its interval and the block count."""
        return {"delta": self.delta, "delta_ci95": [self.low, self.high],
                "delta_blocks": self.blocks}


def leave_outs(accumulator: Accumulator) -> list[float]:
    """The statistic with each block of seeds left out in turn, block 0 first."""
    return [float(accumulator.value(b)) for b in range(accumulator.blocks)]


def between(score_a: float, leave_out_a: Sequence[float], score_b: float,
            leave_out_b: Sequence[float], higher_is_better: bool = False) -> Delta:
    """S_b - S_a and its jackknife interval from both scores' leave-one-block-out values.

    Both must come from the same seed blocks (the pairing is by block); ValueError otherwise.
    """
    k = len(leave_out_a)
    if len(leave_out_b) != k:
        raise ValueError("paired deltas need both schedules scored on the same seed blocks")
    if k < 2:
        raise ValueError(f"an interval needs 2 or more blocks of seeds, got {k}")
    leave_out = [float(b) - float(a) for a, b in zip(leave_out_a, leave_out_b, strict=True)]
    mean = math.fsum(leave_out) / k
    se = math.sqrt((k - 1) / k * math.fsum((v - mean) ** 2 for v in leave_out))
    half = t_quantile(k - 1) * se
    full = score_b - score_a
    return Delta(full, full - half, full + half, k, higher_is_better)


def paired_delta(tuned: Accumulator, baseline: Accumulator,
                 higher_is_better: bool = False) -> Delta:
    """The jackknife interval of S(tuned) - S(baseline) over their common seed blocks."""
    import torch

    if tuned.blocks != baseline.blocks or tuned.total != baseline.total or \
            not torch.equal(tuned.count, baseline.count):
        raise ValueError("paired deltas need both schedules scored on the same seed blocks")
    return between(baseline.value(), leave_outs(baseline), tuned.value(), leave_outs(tuned),
                   higher_is_better)
