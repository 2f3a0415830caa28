"""The Frechet distance of FID and FD-DINOv2: Gaussians fitted to features, in float64."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .reference import FeatureSums
from .statistic import Accumulator, Statistic


def moments(sums: FeatureSums) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (float64, on the CPU) of summed features."""
    total = sums.total.to(torch.float64).cpu()
    outer = sums.outer.to(torch.float64).cpu()
    mu = total / sums.count
    return mu, (outer - sums.count * torch.outer(mu, mu)) / (sums.count - 1)


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor,
                     sigma2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64.

    The trace of the matrix square root is the sum of the square roots of the eigenvalues of
    S1 S2 (real and non-negative up to rounding for covariances).
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    root = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * root)


def fid_from_sums(gen: FeatureSums, ref: FeatureSums) -> float:
    """The Frechet distance between the Gaussians of two sets of summed features."""
    return frechet_distance(*moments(gen), *moments(ref))


class SumBlocks(Accumulator):
    """Feature sums (sum, sum of outer products) per block of seeds, float64, on the device."""

    def __init__(self, blocks: int, total: int, dim: int, device: torch.device | str,
                 reference: FeatureSums | None = None) -> None:
        super().__init__(blocks, total)
        self.sum = torch.zeros(blocks, dim, dtype=torch.float64, device=device)
        self.outer = torch.zeros(blocks, dim, dim, dtype=torch.float64, device=device)
        self.reference = reference

    def add_block(self, block: int, features: torch.Tensor, context: Sequence | None) -> None:
        """Add the block's features to its sums."""
        part = features.detach().to(self.sum.device, torch.float64)
        self.sum[block] += part.sum(0)
        self.outer[block] += part.T @ part

    def state(self) -> dict[str, torch.Tensor]:
        """The per-block sums and counts (float64 and int64, on the CPU)."""
        return {"sum": self.sum.cpu(), "outer": self.outer.cpu(), "count": self.count.clone()}

    def load(self, state: dict[str, torch.Tensor], seen: int) -> None:
        """Hold the per-block sums of ``state`` as if its ``seen`` images had been added."""
        if state["sum"].shape != self.sum.shape or state["outer"].shape != self.outer.shape:
            raise ValueError("the stored sums have another number of blocks or features")
        self.sum.copy_(state["sum"])
        self.outer.copy_(state["outer"])
        self.count.copy_(state["count"])
        self.seen = int(seen)

    def without(self, block: int | None) -> FeatureSums:
        """The summed statistics of every block but ``block`` (all of them for None)."""
        keep = self.kept(block)
        return FeatureSums(self.sum[keep].sum(0), self.outer[keep].sum(0),
                           int(self.count[keep].sum()))

    def value(self, leave_out: int | None = None) -> float:
        """The Frechet distance to the reference, without block ``leave_out``."""
        if self.reference is None:
            raise ValueError("these sums have no reference to measure against")
        sums = self.without(leave_out)
        if sums.count < 2:
            raise ValueError(f"a Frechet distance needs 2 or more images, got {sums.count}")
        if not bool(torch.isfinite(sums.total).all()):
            return float("nan")
        return fid_from_sums(sums, self.reference)


class Frechet(Statistic):
    """The Frechet distance between Gaussians of generated and reference features."""

    needs = "sums"
    higher_is_better = False

    def __init__(self, reference: FeatureSums) -> None:
        self.reference = reference
        self.device = reference.total.device  # the generated sums live beside the reference

    def accumulator(self, blocks: int = 1, total: int = 0) -> SumBlocks:
        """Fresh per-block sums of the reference's feature size."""
        dim = int(self.reference.total.shape[0])
        return SumBlocks(blocks, max(total, 1), dim, self.device, self.reference)
