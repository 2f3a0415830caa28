"""FID on torchmetrics against an independent scipy computation; reference cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from skipsearch.metrics.features import DigitsClassifier, FeatureExtractor
from skipsearch.metrics.fid import FIDScorer
from skipsearch.metrics.reference import cached_reference, feature_sums, reference_images
from tests.conftest import TINY_CLASSIFIER, scaled_up


@pytest.fixture
def extractor():
    """A random tiny classifier whose features spread over O(1)."""
    torch.manual_seed(3)
    return FeatureExtractor(scaled_up(DigitsClassifier(TINY_CLASSIFIER)), "tiny", "0" * 64)


def scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance of Gaussians fitted to two feature sets, with scipy's sqrtm."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_matches_scipy_on_the_same_features(extractor):
    real = reference_images("digits")[:600]
    g = torch.Generator().manual_seed(0)
    fake = (real[:300] + 0.4 * torch.randn(real[:300].shape, generator=g)).clamp(-1, 1)
    scorer = FIDScorer(extractor, feature_sums(extractor, real, batch_size=128))
    for batch in fake.split(64):
        scorer.update(batch)
    ours = scorer.compute()
    expected = scipy_fid(extractor(real).numpy(), extractor(fake).numpy())
    assert expected > 1.0
    assert ours == pytest.approx(expected, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero(extractor):
    real = reference_images("digits")[:400]
    scorer = FIDScorer(extractor, feature_sums(extractor, real))
    scorer.update(real)
    assert abs(scorer.compute()) < 1e-6


def test_reset_keeps_the_reference(extractor):
    real = reference_images("digits")[:400]
    scorer = FIDScorer(extractor, feature_sums(extractor, real))
    scorer.update(real[:200])
    first = scorer.compute()
    scorer.reset()
    scorer.update(real[:200])
    assert scorer.compute() == pytest.approx(first, rel=1e-12)


def test_reference_statistics_are_cached(extractor, tmp_path):
    first = cached_reference("digits", extractor, tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and first.count == 1797
    mtime = files[0].stat().st_mtime_ns
    second = cached_reference("digits", extractor, tmp_path)
    assert files[0].stat().st_mtime_ns == mtime
    assert torch.equal(first.outer, second.outer) and torch.equal(first.total, second.total)


class FeaturesAsGiven(torch.nn.Module):
    """A 'feature network' that returns its input, so FID sees chosen statistics."""

    name, sha256, num_features, img_channels = "given", "0" * 64, 6, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).double()


def samples_with(mu: torch.Tensor, sigma: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n points whose mean and (n - 1)-normalised covariance are mu and sigma, as 'images'."""
    z = torch.randn(n, len(mu), generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.T @ z / (n - 1))).T
    x = mu + z @ torch.linalg.cholesky(sigma).T
    return x.reshape(n, 1, len(mu), 1)


def scipy_fid_from_stats(mu1, s1, mu2, s2) -> float:
    """Frechet distance of two Gaussians with scipy's matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_has_the_known_answer_for_gaussians():
    # Diagonal covariances a and b turned by one rotation Q: the Frechet distance is
    # |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2, whatever Q is.
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    b = torch.rand(6, generator=g, dtype=torch.float64) * 2 + 0.1
    mu1 = torch.randn(6, generator=g, dtype=torch.float64)
    mu2 = torch.zeros(6, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    s1, s2 = Q @ torch.diag(a) @ Q.T, Q @ torch.diag(b) @ Q.T
    known = (((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()).item()
    extractor = FeaturesAsGiven()
    scorer = FIDScorer(extractor, feature_sums(extractor, samples_with(mu1, s1, 1000, 1)))
    scorer.update(samples_with(mu2, s2, 500, 2))
    assert scorer.compute() == pytest.approx(known, rel=1e-6)
    reference = scipy_fid_from_stats(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    assert reference == pytest.approx(known, rel=1e-6)
