"""KID: torchmetrics on equal sizes, a brute-force loop on unequal ones, blocks left out."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance

from skipsearch.metrics import kid as kid_module
from skipsearch.metrics.kid import KID, mmd2_unbiased


class Given(torch.nn.Module):
    """A 'feature network' that returns its input: torchmetrics sees the given features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """n standard normal d-vectors (plus ``shift``) in float64."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def torchmetrics_kid(fake: torch.Tensor, real: torch.Tensor) -> float:
    """torchmetrics' KID with one subset holding every feature (needs equal counts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = KernelInceptionDistance(feature=Given(), subsets=1, subset_size=fake.shape[0])
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute()[0])


def brute_force(x: list[list[float]], y: list[list[float]]) -> float:
    """The unbiased estimator, written out with python loops from the formula."""
    d = len(x[0])

    def k(a: list[float], b: list[float]) -> float:
        return (sum(p * q for p, q in zip(a, b, strict=True)) / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    xy = sum(k(a, b) for a in x for b in y)
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


def scored(stat: KID, fake: torch.Tensor, blocks: int, batch: int):
    """An accumulator fed ``fake`` in seed order, ``batch`` features at a time."""
    acc = stat.accumulator(blocks, fake.shape[0])
    for i in range(0, fake.shape[0], batch):
        acc.add(fake[i:i + batch])
    return acc


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_equal_sizes_match_torchmetrics(shift):
    real, fake = features(150, 8, 1), features(150, 8, 2, shift)
    expected = torchmetrics_kid(fake, real)
    assert mmd2_unbiased(fake, real) == pytest.approx(expected, rel=1e-9)
    acc = scored(KID(real, chunk=32), fake, 1, 40)
    assert acc.value() == pytest.approx(expected, rel=1e-9)


def test_unequal_sizes_match_brute_force():
    x, y = features(20, 5, 3, 0.2), features(30, 5, 4)
    expected = brute_force(x.tolist(), y.tolist())
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)
    assert mmd2_unbiased(x, y, chunk=7) == pytest.approx(expected, rel=1e-12)
    # Reference and generated features stored in float32 are kept as float64 of those values.
    stat = KID(y.float(), chunk=4)
    acc = scored(stat, x.float(), 3, 6)
    assert acc.value() == pytest.approx(brute_force(x.float().tolist(), y.float().tolist()),
                                        rel=1e-12)


def test_leaving_a_block_out_equals_recomputing_without_it():
    real, fake = features(70, 6, 5), features(53, 6, 6, 0.25)
    stat = KID(real, chunk=16)
    acc = scored(stat, fake, 5, 9)  # batches straddle the block borders
    ids = (torch.arange(53) * 5) // 53
    assert acc.value() == pytest.approx(mmd2_unbiased(fake, real), rel=1e-10)
    for b in range(5):
        expected = mmd2_unbiased(fake[ids != b], real)
        assert acc.value(leave_out=b) == pytest.approx(expected, rel=1e-10)
    # Every block differs, so leaving out different blocks gives different values.
    values = [acc.value(leave_out=b) for b in range(5)]
    assert all(a != b for a, b in itertools.combinations(values, 2))


def test_same_distribution_near_zero_shifted_clearly_positive():
    real = features(400, 16, 7)
    stat = KID(real)
    same = scored(stat, features(400, 16, 8), 4, 100).value()
    shifted = scored(stat, features(400, 16, 9, 0.5), 4, 100).value()
    assert abs(same) < 0.05
    assert shifted > 0.5 and shifted > 20 * abs(same)
    assert KID.higher_is_better is False and KID.needs == "features"


def test_leave_out_is_arithmetic_on_kept_sums(monkeypatch):
    """A value does no kernel work: the kernel is never called once the features are in."""
    real, fake = features(500, 64, 10), features(3000, 64, 11, 0.1)
    acc = scored(KID(real), fake, 10, 500)

    def no_kernel(*args):
        raise AssertionError("a KID value computed a kernel")

    monkeypatch.setattr(kid_module, "_kernel", no_kernel)
    values = [acc.value(leave_out=b) for b in range(10)]
    assert all(v > 0 for v in values)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="2 reference"):
        KID(features(1, 4, 0))
    with pytest.raises(ValueError, match="dimensions"):
        KID(features(5, 4, 0)).accumulator(1, 3).add(features(3, 5, 0))
    acc = KID(features(5, 4, 0)).accumulator(2, 3)
    acc.add(features(3, 4, 1))
    with pytest.raises(ValueError, match="at least 2"):
        acc.value(leave_out=0)  # one generated feature left
