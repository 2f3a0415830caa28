"""Racing confirmation's statistics: alpha spending, the paired t test, block prefixes."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from skipsearch.metrics.frechet import SumBlocks
from skipsearch.metrics.reference import FeatureSums
from skipsearch.metrics.statistic import block_ids
from skipsearch.search.race import block_bounds, spent, stops, worse_by


@pytest.mark.parametrize("blocks", [3, 4, 10, 25])
def test_the_looks_spend_no_more_than_alpha(blocks):
    # a(t) = alpha t over looks 2 .. K-1: a((K-1)/K) in all, never more than alpha.
    total = sum(spent(j, blocks, 0.05) for j in range(2, blocks))
    assert total == pytest.approx(0.05 * (blocks - 1) / blocks)
    assert all(spent(j, blocks, 0.05) > 0 for j in range(2, blocks))


def test_the_test_statistic_is_scipys_paired_t():
    rng = random.Random(3)
    for _ in range(20):
        j = rng.randint(2, 12)
        leader = [rng.gauss(100, 5) for _ in range(j)]
        other = [v + rng.gauss(2, 3) for v in leader]
        mean, t = worse_by(other, leader, higher_is_better=False)
        reference = scipy.stats.ttest_rel(other, leader)
        assert t == pytest.approx(reference.statistic, rel=1e-9)
        assert mean == pytest.approx(np.mean(np.subtract(other, leader)))
        # where higher is better, being worse is scoring lower: the sign turns
        assert worse_by(other, leader, higher_is_better=True)[1] == pytest.approx(-t)


@pytest.mark.parametrize(("n", "blocks"), [(10, 10), (37, 5), (2000, 10), (101, 7)])
def test_block_bounds_cut_the_seeds_as_the_accumulators_do(n, blocks):
    bounds = block_bounds(n, blocks)
    ids = block_ids(0, n, blocks, n).tolist()
    assert bounds[0] == 0 and bounds[-1] == n
    assert [b for b in range(blocks) for _ in range(bounds[b], bounds[b + 1])] == ids


def frechet_of(x: np.ndarray, ref: np.ndarray) -> float:
    """FID from the formula with scipy's matrix square root, as a second implementation."""
    mu1, mu2 = x.mean(0), ref.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(ref, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_a_prefix_of_blocks_scores_as_those_images_alone():
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    sums = FeatureSums(ref.sum(0), ref.T @ ref, 300)
    images = torch.randn(50, 4, generator=gen, dtype=torch.float64) * 1.3 + 0.2
    acc = SumBlocks(5, 50, 4, "cpu", sums)
    acc.add(images[:17])
    acc.add(images[17:])
    bounds = block_bounds(50, 5)
    for j in (2, 3, 5):
        with acc.within(range(j)):
            assert acc.value() == pytest.approx(frechet_of(images[:bounds[j]].numpy(),
                                                           ref.numpy()), rel=1e-8)
            keep = [i for i in range(bounds[j]) if not bounds[1] <= i < bounds[2]]
            assert acc.value(1) == pytest.approx(frechet_of(images[keep].numpy(), ref.numpy()),
                                                 rel=1e-8)
    with acc.within([3]):
        assert acc.value() == pytest.approx(frechet_of(images[bounds[3]:bounds[4]].numpy(),
                                                       ref.numpy()), rel=1e-8)
    assert acc.only is None  # the view ends with the block
    assert acc.value() == pytest.approx(frechet_of(images.numpy(), ref.numpy()), rel=1e-8)


def race(values: list[list[float]], blocks: int, alpha: float) -> dict[int, int]:
    """Run the looks of one race on given block scores: index -> blocks when stopped."""
    stopped: dict[int, int] = {}
    for j in range(2, blocks):
        live = [i for i in range(len(values)) if i not in stopped]
        found = stops([values[i][:j] for i in live], blocks, alpha, rivals=len(values) - 1)
        stopped.update({live[i]: j for i in found})
    return stopped


def test_a_best_candidate_is_stopped_at_most_alpha_of_the_time():
    # Three candidates equally good (each is "a best"): block scores share a block effect
    # (the seeds) and differ by noise. Over many races, candidate 0 is ever stopped in at
    # most alpha of them (Monte Carlo slack: 3 standard errors).
    rng = random.Random(11)
    runs, alpha, blocks = 3000, 0.1, 10
    hit = 0
    for _ in range(runs):
        shared = [rng.gauss(0, 4) for _ in range(blocks)]
        values = [[s + rng.gauss(0, 1) for s in shared] for _ in range(3)]
        hit += 0 in race(values, blocks, alpha)
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert hit / runs <= bound


def test_a_clearly_worse_candidate_stops_early_and_the_leader_never():
    rng = random.Random(5)
    blocks = 10
    shared = [rng.gauss(0, 4) for _ in range(blocks)]
    good = [s + rng.gauss(0, 1) for s in shared]
    bad = [s + 20 + rng.gauss(0, 1) for s in shared]
    stopped = race([good, bad], blocks, 0.05)
    assert stopped == {1: stopped[1]} and stopped[1] < blocks - 1
    # higher is better: the same scores make the other one the loser
    flipped = {}
    for j in range(2, blocks):
        found = stops([good[:j], bad[:j]], blocks, 0.05, higher_is_better=True)
        if found:
            flipped = found
            break
    assert list(flipped) == [0] and flipped[0]["leader"] == 1


def test_no_look_before_two_blocks_at_the_last_or_on_a_missing_score():
    assert stops([[1.0], [9.0]], 10, 0.05) == {}
    assert stops([[1.0] * 9 + [1.0], [9.0] * 10], 10, 0.05) == {}  # the last block
    assert stops([[1.0, 1.1, 0.9], [9.0, math.nan, 9.1]], 10, 0.05) == {}
