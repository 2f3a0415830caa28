"""Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019), with k nearest neighbours.

Each real feature gets a ball whose radius is the distance to its k-th nearest neighbour among
the other real features. Precision is the fraction of generated features inside at least one
real ball (distance <= radius); recall swaps the roles: generated balls from the generated set,
and the fraction of real features inside one of them. Distances are float64 and only a chunk x
chunk tile of them exists at a time. The statistic's value is the F1 score of the two.

Whether a generated feature lies inside the real manifold does not depend on the other
generated features, so the accumulator counts those per block as they arrive; the generated
radii do, so recall with a block left out recomputes them from the kept features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .statistic import Accumulator, FeatureBlocks, Statistic


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of a and b, clamped at 0."""
    d2 = a.square().sum(1)[:, None] + b.square().sum(1)[None, :] - 2 * a @ b.T
    return d2.clamp_min_(0)


def _check_k(k: int, count: int, side: str) -> None:
    """ValueError unless 1 <= k < count."""
    if not 1 <= k < count:
        raise ValueError(f"k={k} nearest neighbours need more than k {side} features "
                         f"(and k >= 1), got {count}")


def squared_radii(features: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Squared distance of each feature to its k-th nearest neighbour among the others."""
    n = features.shape[0]
    _check_k(k, n, "input")
    radii = torch.empty(n, dtype=torch.float64, device=features.device)
    for i in range(0, n, chunk):
        rows = features[i:i + chunk]
        best = torch.full((rows.shape[0], k), torch.inf, dtype=torch.float64,
                          device=features.device)
        for j in range(0, n, chunk):
            d2 = _squared_distances(rows, features[j:j + chunk])
            if i == j:
                d2.fill_diagonal_(torch.inf)  # a feature is not its own neighbour
            near = d2.topk(min(k, d2.shape[1]), dim=1, largest=False).values
            best = torch.cat([best, near], dim=1).topk(k, dim=1, largest=False).values
        radii[i:i + chunk] = best.max(dim=1).values
    return radii


def inside(queries: torch.Tensor, centres: torch.Tensor, radii2: torch.Tensor,
           chunk: int = 2048) -> torch.Tensor:
    """For each query, whether it lies in some ball (centre, squared radius), as bool (Q,)."""
    hit = torch.zeros(queries.shape[0], dtype=torch.bool, device=queries.device)
    for i in range(0, queries.shape[0], chunk):
        rows = queries[i:i + chunk]
        for j in range(0, centres.shape[0], chunk):
            d2 = _squared_distances(rows, centres[j:j + chunk])
            hit[i:i + chunk] |= (d2 <= radii2[None, j:j + chunk]).any(dim=1)
    return hit


def _as_features(x: torch.Tensor, name: str) -> torch.Tensor:
    """x as a float64 (N, D) tensor, or ValueError."""
    if x.ndim != 2:
        raise ValueError(f"{name} features must be (N, D), got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def f1(precision: float, recall: float) -> float:
    """The harmonic mean 2PR / (P + R), 0 when both are 0."""
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3,
                     chunk: int = 2048) -> tuple[float, float]:
    """Improved precision and recall of fake features (M, D) against real ones (N, D)."""
    real = _as_features(real, "real")
    fake = _as_features(fake, "fake").to(real.device)
    _check_k(k, real.shape[0], "real")
    _check_k(k, fake.shape[0], "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} and {fake.shape[1]}")
    precision = inside(fake, real, squared_radii(real, k, chunk), chunk).double().mean()
    recall = inside(real, fake, squared_radii(fake, k, chunk), chunk).double().mean()
    return float(precision), float(recall)


class PrecisionRecallBlocks(FeatureBlocks):
    """Generated features per block and, per block, how many lie in the real manifold."""

    def __init__(self, stat: PrecisionRecall, blocks: int, total: int) -> None:
        super().__init__(blocks, total)
        self.stat = stat
        # counted where the features are: no read back to the host per batch
        self.hits = torch.zeros(blocks, dtype=torch.int64, device=stat.reference.device)
        self._parts: dict[int | None, dict[str, float]] = {}  # the value and parts share them

    def add_block(self, block: int, features: torch.Tensor, context: Sequence | None) -> None:
        """Keep the features and count those inside some real ball."""
        stat = self.stat
        x = _as_features(features, "generated").to(stat.reference.device)
        if x.shape[1] != stat.reference.shape[1]:
            raise ValueError(f"generated features have {x.shape[1]} dimensions, "
                             f"the reference {stat.reference.shape[1]}")
        self.features[block].append(x)
        self.hits[block] += inside(x, stat.reference, stat.radii2, stat.chunk).sum()
        self._parts.clear()

    def parts(self, leave_out: int | None = None) -> dict[str, float]:
        """Precision and recall without block ``leave_out`` if given (computed once)."""
        if leave_out not in self._parts:
            self._parts[leave_out] = self._compute(leave_out)
        return dict(self._parts[leave_out])

    def _compute(self, leave_out: int | None) -> dict[str, float]:
        """Precision from the counted hits; recall from the kept features' own radii."""
        stat, keep = self.stat, self.kept(leave_out)
        fake = self.stacked(leave_out)
        _check_k(stat.k, fake.shape[0], "generated")
        precision = int(self.hits[keep].sum()) / fake.shape[0]
        radii2 = squared_radii(fake, stat.k, stat.chunk)
        recall = float(inside(stat.reference, fake, radii2, stat.chunk).double().mean())
        return {"precision": precision, "recall": recall}

    def value(self, leave_out: int | None = None) -> float:
        """F1 of precision and recall without block ``leave_out`` if given."""
        p = self.parts(leave_out)
        return f1(p["precision"], p["recall"])


class PrecisionRecall(Statistic):
    """Improved precision and recall against fixed real features; the value is their F1."""

    needs = "features"
    higher_is_better = True

    def __init__(self, reference: torch.Tensor, k: int = 3, chunk: int = 2048) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, got {chunk}")
        self.reference = _as_features(reference, "reference")
        _check_k(k, self.reference.shape[0], "reference")
        self.k, self.chunk = k, chunk
        #: squared k-NN radii of the real features, computed once
        self.radii2 = squared_radii(self.reference, k, chunk)

    def accumulator(self, blocks: int = 1, total: int = 0) -> Accumulator:
        """A fresh accumulator for ``total`` images in ``blocks`` blocks."""
        return PrecisionRecallBlocks(self, blocks, total)
