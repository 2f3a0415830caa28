"""FID on torchmetrics against an independent scipy computation; reference cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from skipsearch.metrics.features import DigitsClassifier, FeatureExtractor
from skipsearch.metrics.fid import FIDScorer
from skipsearch.metrics.reference import cached_reference, feature_sums, reference_images

from .conftest import TINY_CLASSIFIER, scaled_up


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
