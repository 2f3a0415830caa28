"""How sure a confirmed change is: a jackknife over blocks of seeds, for any statistic.

A confirmation scores a tuned schedule and its baseline on the same seeds, so their images
are paired. The seeds are cut into K consecutive blocks and each statistic's accumulator keeps
what it needs per block (feature sums for a Frechet distance, features for KID and precision
and recall, per-image scores for CLIP score), in memory only. No statistic here is additive
over images, but each can be recomputed with one block left out. The delete-a-group jackknife
of delta = S(tuned) - S(baseline) over those K leave-one-block-out values gives a standard
error; the 95% interval is delta +- t(0.975, K - 1) * se. Pairing cancels most of the noise
the two scores share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def paired_delta(tuned: Accumulator, baseline: Accumulator,
                 higher_is_better: bool = False) -> Delta:
    """The jackknife interval of S(tuned) - S(baseline) over their common seed blocks."""
    if tuned.blocks != baseline.blocks or tuned.total != baseline.total or \
            not torch.equal(tuned.count, baseline.count):
        raise ValueError("paired deltas need both schedules scored on the same seed blocks")
    k = tuned.blocks
    if k < 2:
        raise ValueError(f"an interval needs 2 or more blocks of seeds, got {k}")

    def delta(block: int | None) -> float:
        return tuned.value(block) - baseline.value(block)

    full = delta(None)
    leave_out = torch.tensor([delta(b) for b in range(k)], dtype=torch.float64)
    se = float(((k - 1) / k * (leave_out - leave_out.mean()).square().sum()).sqrt())
    half = t_quantile(k - 1) * se
    return Delta(full, full - half, full + half, k, higher_is_better)
