"""KID (Binkowski et al., ICLR 2018): the unbiased squared MMD with a cubic polynomial kernel.

k(x, y) = (x . y / d + 1)^3 with d the feature dimension. For m generated features x and n
reference features y the unbiased estimator is

    sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
        - 2 sum_{i, j} k(x_i, y_j) / (m n),

computed deterministically on every feature in float64 (torchmetrics' value with one subset
of all features when m == n). Kernel matrices are only ever formed a chunk by a chunk.

The reference term is summed once. While a scoring pass adds generated features, the
accumulator keeps per block the kernel sums against every block (distinct pairs only) and
against the reference, so the value with a block left out is arithmetic on those sums. It
keeps the generated features as well (float64), to pair later batches with earlier ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .statistic import Accumulator, Statistic


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The cubic polynomial kernel matrix between the rows of a and b."""
    return (a @ b.T / a.shape[1] + 1) ** 3


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    """Sum of k(a_i, b_j) over all i, j, a chunk x chunk tile at a time.

    A 0-dim tensor on a's device: nothing is read back to the host.
    """
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i in range(0, a.shape[0], chunk):
        for j in range(0, b.shape[0], chunk):
            total += _kernel(a[i:i + chunk], b[j:j + chunk]).sum()
    return total


def _pair_sum(a: torch.Tensor, chunk: int) -> torch.Tensor:
    """Sum of k(a_i, a_j) over ordered pairs i != j; tiles above the diagonal count twice."""
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i in range(0, a.shape[0], chunk):
        rows = a[i:i + chunk]
        tile = _kernel(rows, rows)
        total += tile.sum() - tile.diagonal().sum()
        for j in range(i + chunk, a.shape[0], chunk):
            total += 2 * _kernel(rows, a[j:j + chunk]).sum()
    return total


def _as_features(x: torch.Tensor, name: str) -> torch.Tensor:
    """x as a float64 (N, D) tensor, or ValueError."""
    if x.ndim != 2:
        raise ValueError(f"{name} features must be (N, D), got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def _mmd2(xx: float, yy: float, xy: float, m: int, n: int) -> float:
    """The unbiased estimator from its three kernel sums."""
    if m < 2 or n < 2:
        raise ValueError(f"KID needs at least 2 features on each side, got {m} and {n}")
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> float:
    """Unbiased squared MMD (cubic kernel) of features x (m, D) and y (n, D), in float64."""
    x, y = _as_features(x, "x"), _as_features(y, "y").to(x.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} and {y.shape[1]}")
    return _mmd2(float(_pair_sum(x, chunk)), float(_pair_sum(y, chunk)),
                 float(_kernel_sum(x, y, chunk)), x.shape[0], y.shape[0])


class KIDBlocks(Accumulator):
    """Kernel sums of generated features per block, against each other and the reference."""

    def __init__(self, stat: KID, blocks: int, total: int) -> None:
        super().__init__(blocks, total)
        self.stat = stat
        #: the generated features of each block so far, one float64 tensor per block
        self.kept_features: list[torch.Tensor | None] = [None] * blocks
        device = stat.reference.device  # the sums stay there until a value is read
        #: pair[b, c]: sum of k over ordered pairs (i in b, j in c, i != j); symmetric
        self.pair = torch.zeros(blocks, blocks, dtype=torch.float64, device=device)
        #: cross[b]: sum of k(x_i, y_j) over i in block b and every reference y_j
        self.cross = torch.zeros(blocks, dtype=torch.float64, device=device)

    def add_block(self, block: int, features: torch.Tensor, context: Sequence | None) -> None:
        """Add the kernel sums of new features of ``block`` and keep the features."""
        stat, chunk = self.stat, self.stat.chunk
        x = _as_features(features, "generated").to(stat.reference.device)
        if x.shape[1] != stat.reference.shape[1]:
            raise ValueError(f"generated features have {x.shape[1]} dimensions, "
                             f"the reference {stat.reference.shape[1]}")
        self.cross[block] += _kernel_sum(x, stat.reference, chunk)
        self.pair[block, block] += _pair_sum(x, chunk)
        for other, old in enumerate(self.kept_features):
            if old is not None:
                s = _kernel_sum(x, old, chunk)
                self.pair[block, other] += s
                self.pair[other, block] += s
        old = self.kept_features[block]
        self.kept_features[block] = x if old is None else torch.cat([old, x])

    def value(self, leave_out: int | None = None) -> float:
        """KID of the generated features added, without block ``leave_out`` if given."""
        keep = self.kept(leave_out)
        m = int(self.count[keep].sum())
        xx = float(self.pair[keep][:, keep].sum())
        return _mmd2(xx, self.stat.ref_pairs, float(self.cross[keep].sum()), m,
                     self.stat.reference.shape[0])


class KID(Statistic):
    """Kernel Inception Distance against fixed reference features (unbiased, deterministic)."""

    needs = "features"
    higher_is_better = False

    def __init__(self, reference: torch.Tensor, chunk: int = 4096) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, got {chunk}")
        self.reference = _as_features(reference, "reference")
        if self.reference.shape[0] < 2:
            raise ValueError(f"KID needs at least 2 reference features, got "
                             f"{self.reference.shape[0]}")
        self.chunk = chunk
        #: sum of k(y_i, y_j) over ordered reference pairs i != j, summed once
        self.ref_pairs = float(_pair_sum(self.reference, chunk))

    def accumulator(self, blocks: int = 1, total: int = 0) -> Accumulator:
        """A fresh accumulator for ``total`` images in ``blocks`` blocks."""
        return KIDBlocks(self, blocks, total)
