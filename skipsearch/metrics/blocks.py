"""How sure a confirmed FID change is: a jackknife over blocks of seeds, from feature sums.

A confirmation scores a tuned schedule and its baseline on the same seeds, so their images
are paired. The seeds are cut into K consecutive blocks; per block the generated features'
sum, sum of outer products and count are kept in memory (never on disk). FID is not
additive over images, but both FIDs can be recomputed from the summed statistics with one
block left out. The delete-a-group jackknife of delta = FID(tuned) - FID(baseline) over
those K leave-one-block-out values gives a standard error; the 95% interval is
delta +- t(0.975, K - 1) * se. Pairing cancels most of the noise the two FIDs share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .reference import FeatureSums


class BlockSums:
    """Feature sums of generated images in ``blocks`` consecutive blocks of ``total`` seeds."""

    def __init__(self, blocks: int, total: int, dim: int, device: torch.device | str) -> None:
        if not 2 <= blocks <= total:
            raise ValueError(f"need 2 <= blocks <= images, got {blocks} blocks of {total}")
        self.blocks, self.total, self.seen = blocks, total, 0
        self.sum = torch.zeros(blocks, dim, dtype=torch.float64, device=device)
        self.outer = torch.zeros(blocks, dim, dim, dtype=torch.float64, device=device)
        self.count = torch.zeros(blocks, dtype=torch.int64)

    def block_of(self, position: int) -> int:
        """The block of the image at ``position`` (0-based) among ``total``."""
        return position * self.blocks // self.total

    def add(self, features: torch.Tensor) -> None:
        """Add the features of the next images in seed order."""
        features = features.detach().to(torch.float64)
        ids = torch.tensor([self.block_of(self.seen + i) for i in range(features.shape[0])])
        for block in ids.unique().tolist():
            part = features[(ids == block).to(features.device)]
            self.sum[block] += part.sum(0)
            self.outer[block] += part.T @ part
            self.count[block] += part.shape[0]
        self.seen += features.shape[0]

    def without(self, block: int | None) -> FeatureSums:
        """The summed statistics of every block but ``block`` (all of them for None)."""
        keep = [b for b in range(self.blocks) if b != block]
        return FeatureSums(self.sum[keep].sum(0), self.outer[keep].sum(0),
                           int(self.count[keep].sum()))


def fid_from_sums(gen: FeatureSums, ref: FeatureSums) -> float:
    """Frechet distance between the Gaussians of two sets of summed features (float64).

    ||mu_g - mu_r||^2 + tr(S_g) + tr(S_r) - 2 tr((S_g S_r)^(1/2)), with unbiased covariances;
    the trace of the matrix square root is the sum of the square roots of the eigenvalues of
    S_g S_r (as torchmetrics computes it).
    """
    def moments(s: FeatureSums) -> tuple[torch.Tensor, torch.Tensor]:
        total = s.total.to(torch.float64).cpu()
        outer = s.outer.to(torch.float64).cpu()
        mu = total / s.count
        return mu, (outer - s.count * torch.outer(mu, mu)) / (s.count - 1)

    mu_g, cov_g = moments(gen)
    mu_r, cov_r = moments(ref)
    root = torch.linalg.eigvals(cov_g @ cov_r).sqrt().real.sum()
    return float((mu_g - mu_r).square().sum() + cov_g.trace() + cov_r.trace() - 2 * root)


def t_quantile(df: int, p: float = 0.975) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Delta:
    """FID(tuned) - FID(baseline) on paired images and its 95% jackknife interval."""

    delta: float
    low: float
    high: float
    blocks: int

    @property
    def significant(self) -> bool:
        """True when the whole interval lies below zero (a real improvement)."""
        return self.high < 0

    def to_dict(self) -> dict:
        """The record's fields: delta, its interval and the block count."""
        return {"delta": self.delta, "delta_ci95": [self.low, self.high],
                "delta_blocks": self.blocks}


def paired_delta(tuned: BlockSums, baseline: BlockSums, ref: FeatureSums) -> Delta:
    """The jackknife interval of FID(tuned) - FID(baseline) over their common seed blocks."""
    if tuned.blocks != baseline.blocks or tuned.total != baseline.total or \
            not torch.equal(tuned.count, baseline.count):
        raise ValueError("paired deltas need both schedules scored on the same seed blocks")
    k = tuned.blocks

    def delta(block: int | None) -> float:
        return fid_from_sums(tuned.without(block), ref) - fid_from_sums(baseline.without(block),
                                                                        ref)

    full = delta(None)
    leave_out = torch.tensor([delta(b) for b in range(k)], dtype=torch.float64)
    se = float(((k - 1) / k * (leave_out - leave_out.mean()).square().sum()).sqrt())
    half = t_quantile(k - 1) * se
    return Delta(full, full - half, full + half, k)
