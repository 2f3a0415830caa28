"""The interval of a confirmed change: Frechet distances from block sums, coverage, pairing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from skipsearch.metrics.blocks import paired_delta
from skipsearch.metrics.frechet import SumBlocks, fid_from_sums
from skipsearch.metrics.reference import FeatureSums


def frechet(mu1, cov1, mu2, cov2) -> float:
    """The closed-form Frechet distance of two Gaussians (scipy's matrix square root)."""
    root = linalg.sqrtm(cov1 @ cov2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * root.real))


def blocks_of(features: np.ndarray, k: int, ref: FeatureSums | None = None) -> SumBlocks:
    sums = SumBlocks(k, len(features), features.shape[1], "cpu", ref)
    for chunk in np.array_split(features, 7):  # batches that straddle the blocks
        sums.add(torch.from_numpy(chunk))
    return sums


def test_fid_from_sums_matches_the_closed_form_of_the_sample_moments():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(400, 5)) + 0.5
    ref = FeatureSums(torch.from_numpy(b.sum(0)), torch.from_numpy(b.T @ b), len(b))
    sums = blocks_of(a, 6)
    expected = frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid_from_sums(sums.without(None), ref) == pytest.approx(expected, rel=1e-9)
    rest = np.delete(a, np.arange(100, 150), axis=0)  # block 2 of 6 holds images 100..149
    expected = frechet(rest.mean(0), np.cov(rest, rowvar=False), b.mean(0),
                       np.cov(b, rowvar=False))
    assert fid_from_sums(sums.without(2), ref) == pytest.approx(expected, rel=1e-9)
    assert sums.count.tolist() == [50] * 6


def test_the_interval_covers_the_true_change_about_95_percent_of_the_time():
    """Paired features: tuned = A baseline + b + noise, so the true change is in closed form."""
    rng = np.random.default_rng(1)
    d, n, k, reps = 3, 600, 10, 300
    mu, cov = np.zeros(d), np.diag([1.0, 0.6, 0.3])
    a = np.eye(d) * 0.9 + 0.05 * rng.normal(size=(d, d))
    shift, noise = np.array([0.2, 0.1, -0.15]), 0.1 * np.eye(d)
    mu_ref, cov_ref = np.array([0.3, 0.1, -0.2]), np.diag([0.8, 0.7, 0.4])
    # the reference is known exactly (a huge count makes its sample moments the true ones)
    count = 10**9
    ref = FeatureSums(torch.from_numpy(count * mu_ref),
                      torch.from_numpy((count - 1) * cov_ref + count * np.outer(mu_ref, mu_ref)),
                      count)
    truth = (frechet(a @ mu + shift, a @ cov @ a.T + noise, mu_ref, cov_ref)
             - frechet(mu, cov, mu_ref, cov_ref))
    assert truth < 0  # the tuned features are closer to the reference
    hits, widths = 0, []
    for _ in range(reps):
        base = rng.multivariate_normal(mu, cov, size=n)
        tuned = base @ a.T + shift + rng.multivariate_normal(np.zeros(d), noise, size=n)
        delta = paired_delta(blocks_of(tuned, k, ref), blocks_of(base, k, ref))
        hits += delta.low <= truth <= delta.high
        widths.append(delta.high - delta.low)
    coverage = hits / reps
    assert 0.90 <= coverage <= 0.99, coverage  # binomial sd at 95%: 1.3 points
    assert np.median(widths) < abs(truth)  # and the interval is narrow enough to tell


def test_unpaired_blocks_are_refused():
    a = blocks_of(np.zeros((40, 2)), 4)
    with pytest.raises(ValueError, match="same seed blocks"):
        paired_delta(a, blocks_of(np.zeros((40, 2)), 5))
