"""FID-infinity: the 1/N fit, checkpoints of a streaming FIDScorer, and a Gaussian known answer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from skipsearch.metrics.fid import FIDScorer
from skipsearch.metrics.fid_infinity import FIDInfinity, fid_infinity, infinity_counts
from skipsearch.metrics.reference import FeatureSums

D = 16  # feature dimension of the Gaussian tests


class Identity(torch.nn.Module):
    """A 'feature network' returning its input as float64 features: FID sees the samples."""

    name, sha256, num_features, img_channels = "identity", "0" * 64, D, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).double()


def exact_gaussian(mu: torch.Tensor, sigma: torch.Tensor, count: int = 50000) -> FeatureSums:
    """Sums whose mean and (count - 1)-normalised covariance are exactly mu and sigma."""
    return FeatureSums(mu * count, sigma * (count - 1) + count * torch.outer(mu, mu), count)


def gaussian_samples(n: int, seed: int) -> torch.Tensor:
    """n standard normal D-vectors shaped as one-channel 'images' (n, 1, D, 1)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, D, 1, generator=g, dtype=torch.float64)


def scipy_fid_to_standard_normal(f: np.ndarray) -> float:
    """Frechet distance of the Gaussian fitted to f from N(0, I), with scipy's sqrtm."""
    mu, s = f.mean(0), np.cov(f, rowvar=False)
    covmean = scipy.linalg.sqrtm(s @ np.eye(f.shape[1])).real
    return float((mu**2).sum() + np.trace(s + np.eye(f.shape[1]) - 2 * covmean))


def standard_normal_scorer() -> FIDScorer:
    """A scorer against the exact N(0, I) reference in D dimensions."""
    zero, eye = torch.zeros(D, dtype=torch.float64), torch.eye(D, dtype=torch.float64)
    return FIDScorer(Identity(), exact_gaussian(zero, eye))


def test_counts_follow_the_protocol():
    counts = infinity_counts(50000)
    assert len(counts) == 15 and counts[0] == 5000 and counts[-1] == 50000
    steps = np.diff(counts)
    assert steps.min() >= 3214 and steps.max() <= 3215
    assert infinity_counts(10) == list(range(2, 11))
    assert infinity_counts(2, points=4) == [2]
    for bad in [(1, 15), (100, 1)]:
        with pytest.raises(ValueError):
            infinity_counts(*bad)


def test_exact_line_is_recovered():
    a, b = 3.25, 1234.5
    counts = infinity_counts(20000)
    fit = fid_infinity(counts, [a + b / n for n in counts])
    assert isinstance(fit, FIDInfinity) and fit.counts == tuple(counts)
    assert abs(fit.value - a) < 1e-10 and abs(fit.slope - b) < 1e-10 * b


def test_fit_agrees_with_scipy_linregress():
    rng = np.random.default_rng(0)
    counts = infinity_counts(5000)
    fids = [2.0 + 300.0 / n + rng.normal(0, 0.05) for n in counts]
    fit = fid_infinity(counts, fids)
    reference = scipy.stats.linregress(1.0 / np.asarray(counts, float), fids)
    assert fit.value == pytest.approx(reference.intercept, rel=1e-10)
    assert fit.slope == pytest.approx(reference.slope, rel=1e-10)


def test_fit_needs_two_distinct_counts():
    with pytest.raises(ValueError, match="2 distinct"):
        fid_infinity([100, 100], [1.0, 1.1])
    with pytest.raises(ValueError):
        fid_infinity([100, 200], [1.0])


def test_extrapolation_beats_the_largest_sample_on_a_known_answer():
    # Generated N(0, I) against the exact N(0, I): the true FID is 0, and FID_N is biased upward.
    samples = gaussian_samples(2000, seed=7)
    scorer = standard_normal_scorer()
    scorer.reset(checkpoints=infinity_counts(2000))
    for batch in samples.split(300):
        scorer.update(batch)
    counts = [k for k, _ in scorer.curve]
    assert counts == infinity_counts(2000) and scorer.count == 2000
    features = samples.flatten(1).numpy()
    for k, fid in scorer.curve:  # each checkpoint is the FID of exactly the first k samples
        assert fid == pytest.approx(scipy_fid_to_standard_normal(features[:k]), rel=1e-6)
    fit = scorer.compute_infinity()
    assert fit.counts == tuple(counts)
    largest = scorer.compute()
    assert largest == fit.fids[-1] and largest > 0.02
    assert abs(fit.value - 0.0) < 0.5 * largest
    assert fit.slope > 0


def test_batches_are_split_at_checkpoints():
    samples = gaussian_samples(28, seed=1)
    scorer = standard_normal_scorer()
    scorer.reset(checkpoints=[25, 10, 20, 20, 40])
    for batch in samples.split(7):
        scorer.update(batch)
    assert [k for k, _ in scorer.curve] == [10, 20, 25] and scorer.count == 28
    alone = standard_normal_scorer()
    alone.update(samples[:10])
    assert scorer.curve[0][1] == pytest.approx(alone.compute(), rel=1e-6)
    fit = scorer.compute_infinity()
    assert fit.counts == (10, 20, 25, 28)


def test_reset_without_checkpoints_records_nothing():
    scorer = standard_normal_scorer()
    scorer.reset(checkpoints=[5])
    scorer.update(gaussian_samples(8, seed=2))
    assert len(scorer.curve) == 1
    scorer.reset()
    scorer.update(gaussian_samples(8, seed=2))
    assert scorer.curve == [] and scorer.count == 8
    with pytest.raises(ValueError, match="checkpoints"):
        scorer.compute_infinity()
    with pytest.raises(ValueError):
        scorer.reset(checkpoints=[1, 10])
