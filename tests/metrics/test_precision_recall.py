"""Improved precision and recall: the paper's recipe with scipy, hand-worked cases, blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from skipsearch.metrics.precision_recall import PrecisionRecall, f1, precision_recall


def features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """n normal d-vectors with mean ``shift`` and standard deviation ``scale``, float64."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def points(*coords) -> torch.Tensor:
    """Hand-made features: numbers are 1-D points, tuples are points in len(tuple) dimensions."""
    return torch.tensor([c if isinstance(c, tuple) else (c,) for c in coords],
                        dtype=torch.float64)


def paper(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Precision and recall straight from the paper, with full scipy distance matrices."""

    def coverage(centres: np.ndarray, queries: np.ndarray) -> float:
        own = cdist(centres, centres)
        # Column 0 of each sorted row is the point itself (distance 0); column k is its k-th NN.
        radii = np.sort(own, axis=1)[:, k]
        return float((cdist(queries, centres) <= radii[None, :]).any(axis=1).mean())

    return coverage(real, fake), coverage(fake, real)


def scored(stat: PrecisionRecall, fake: torch.Tensor, blocks: int, batch: int):
    """An accumulator fed ``fake`` in seed order, ``batch`` features at a time."""
    acc = stat.accumulator(blocks, fake.shape[0])
    for i in range(0, fake.shape[0], batch):
        acc.add(fake[i:i + batch])
    return acc


@pytest.mark.parametrize(("n", "m", "k", "shift", "scale"), [
    (120, 90, 3, 0.4, 1.0), (60, 150, 3, 1.0, 1.3), (100, 100, 5, 0.8, 0.7)])
def test_matches_the_paper(n, m, k, shift, scale):
    real, fake = features(n, 6, 1), features(m, 6, 2, shift, scale)
    expected = paper(real.numpy(), fake.numpy(), k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # neither side is trivial
    assert precision_recall(real, fake, k) == pytest.approx(expected, abs=1e-15)
    acc = scored(PrecisionRecall(real, k, chunk=17), fake, 1, 32)
    parts = acc.parts()
    assert (parts["precision"], parts["recall"]) == pytest.approx(expected, abs=1e-15)
    assert acc.value() == pytest.approx(f1(*expected), abs=1e-15)


def test_far_away_fakes_have_zero_precision_and_recall():
    real, fake = points(0, 1, 2, 3, 4, 5), points(100, 101, 102, 103)
    assert precision_recall(real, fake) == (0.0, 0.0)
    acc = scored(PrecisionRecall(real), fake, 2, 4)
    assert acc.parts() == {"precision": 0.0, "recall": 0.0} and acc.value() == 0.0


def test_hand_worked_1d_with_balls_touching_exactly():
    # Real radii (k = 3) of 0, 1, 2, 3 are 3, 2, 2, 3: 6 and -3 lie exactly on the balls of 3
    # and 0, 6.5 and -3.5 just outside. Fake radii are 9.5 or 10: every real point is covered.
    real, fake = points(0, 1, 2, 3), points(6, 6.5, -3, -3.5)
    assert precision_recall(real, fake) == (0.5, 1.0)
    assert scored(PrecisionRecall(real), fake, 1, 4).value() == pytest.approx(2 / 3)


def test_hand_worked_1d_recall_below_one():
    # k = 1: fake radii are 1, so 0, 1 and 2 are covered but 3 and 100 are not; both fakes lie
    # in the radius-1 balls of the real points.
    real, fake = points(0, 1, 2, 3, 100), points(0.5, 1.5)
    assert precision_recall(real, fake, k=1) == (1.0, 0.6)


def test_hand_worked_2d():
    # Corners of a 2 x 2 square: each corner's third neighbour is the opposite corner, radius
    # 2 sqrt 2 = 2.83. (0, 0), (3, 1) (distance 2 to (1, 1)) and (-1, -3.8) (2.8 to (-1, -1))
    # are inside; (5, 5) is not. The origin's fake radius 7.07 covers every corner.
    real = points((1, 1), (1, -1), (-1, 1), (-1, -1))
    fake = points((0, 0), (3, 1), (5, 5), (-1, -3.8))
    assert precision_recall(real, fake) == (0.75, 1.0)


def test_leaving_a_block_out_equals_recomputing_without_it():
    real, fake = features(80, 4, 3), features(61, 4, 4, 0.3, 1.3)
    acc = scored(PrecisionRecall(real, chunk=16), fake, 4, 10)  # batches straddle blocks
    ids = (torch.arange(61) * 4) // 61
    for b in [None, 0, 1, 2, 3]:
        kept = fake if b is None else fake[ids != b]
        p, r = paper(real.numpy(), kept.numpy())
        assert acc.parts(leave_out=b) == pytest.approx({"precision": p, "recall": r},
                                                       abs=1e-15)
        assert acc.value(leave_out=b) == pytest.approx(f1(p, r), abs=1e-15)
    assert len({acc.parts(leave_out=b)["recall"] for b in range(4)}) > 1


@pytest.mark.parametrize("chunk", [1, 3, 50, 4096])
def test_chunk_size_does_not_change_the_result(chunk):
    real, fake = features(70, 5, 5), features(45, 5, 6, 0.5)
    expected = precision_recall(real, fake)
    assert precision_recall(real, fake, chunk=chunk) == expected
    acc = scored(PrecisionRecall(real, chunk=chunk), fake, 3, 8)
    assert (acc.parts()["precision"], acc.parts()["recall"]) == expected


def test_f1_and_flags():
    assert f1(0.0, 0.0) == 0.0 and f1(1.0, 0.5) == pytest.approx(2 / 3)
    assert PrecisionRecall.higher_is_better is True and PrecisionRecall.needs == "features"


def test_k_needs_more_features_than_k():
    with pytest.raises(ValueError, match="got 3"):
        precision_recall(features(3, 2, 0), features(10, 2, 1))
    with pytest.raises(ValueError, match="got 2"):
        precision_recall(features(10, 2, 0), features(2, 2, 1), k=2)
    with pytest.raises(ValueError, match="got 5"):
        PrecisionRecall(features(5, 2, 0), k=5)
    acc = scored(PrecisionRecall(features(10, 2, 0)), features(6, 2, 1), 2, 6)
    with pytest.raises(ValueError, match="got 3"):
        acc.value(leave_out=0)
