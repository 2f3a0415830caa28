"""The shared Frechet distance against EDM2's formula, and its accumulator's sums."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from skipsearch.metrics.frechet import Frechet, frechet_distance, moments
from skipsearch.metrics.reference import FeatureSums


def edm2_frechet(mu: np.ndarray, sigma: np.ndarray, ref_mu: np.ndarray,
                 ref_sigma: np.ndarray) -> float:
    """EDM2's calculate_metrics_from_stats: scipy's sqrtm of sigma @ ref_sigma, its real part."""
    m = np.square(mu - ref_mu).sum()
    s, _ = scipy.linalg.sqrtm(np.dot(sigma, ref_sigma), disp=False)
    return float(np.real(m + np.trace(sigma + ref_sigma - s * 2)))


def gaussian_stats(rng: np.random.Generator, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of n correlated, skewed samples (real features look so)."""
    x = np.abs(rng.normal(size=(n, d)) @ rng.normal(size=(d, d))) + rng.normal(size=d)
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("d", [16, 64, 256])
def test_frechet_distance_equals_edm2s_formula_on_the_same_statistics(d):
    rng = np.random.default_rng(d)
    mu1, s1 = gaussian_stats(rng, d, 4 * d)
    mu2, s2 = gaussian_stats(rng, d, 4 * d)
    ours = frechet_distance(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2)))
    assert ours == pytest.approx(edm2_frechet(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)


def test_identical_gaussians_are_at_distance_zero_and_a_shift_adds_its_square():
    rng = np.random.default_rng(1)
    mu, s = gaussian_stats(rng, 8, 100)
    t = [torch.from_numpy(a) for a in (mu, s)]
    assert frechet_distance(*t, *t) == pytest.approx(0.0, abs=1e-8)
    shifted = torch.from_numpy(mu + 0.5)
    assert frechet_distance(shifted, t[1], *t) == pytest.approx(8 * 0.25, rel=1e-7)


def test_the_accumulator_equals_the_formula_on_the_features_it_was_fed():
    rng = np.random.default_rng(2)
    gen, ref = rng.normal(size=(90, 6)), rng.normal(size=(70, 6)) + 0.3
    sums = FeatureSums(torch.from_numpy(ref.sum(0)), torch.from_numpy(ref.T @ ref), len(ref))
    acc = Frechet(sums).accumulator(blocks=3, total=90)
    for part in np.array_split(gen, 4):
        acc.add(torch.from_numpy(part))
    mu_r, _ = moments(sums)
    assert torch.allclose(mu_r, torch.from_numpy(ref.mean(0)))
    expected = edm2_frechet(gen.mean(0), np.cov(gen, rowvar=False), ref.mean(0),
                            np.cov(ref, rowvar=False))
    assert acc.value() == pytest.approx(expected, rel=1e-9)
    rest = gen[np.r_[0:30, 60:90]]
    expected = edm2_frechet(rest.mean(0), np.cov(rest, rowvar=False), ref.mean(0),
                            np.cov(ref, rowvar=False))
    assert acc.value(leave_out=1) == pytest.approx(expected, rel=1e-9)
