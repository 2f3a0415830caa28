"""The Scorer: one network run per batch for all its metrics, passes, and non-finite images."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skipsearch.metrics.frechet import Frechet
from skipsearch.metrics.kid import KID, mmd2_unbiased
from skipsearch.metrics.reference import FeatureSums
from skipsearch.metrics.registry import METRICS
from skipsearch.metrics.scorer import Metric, Scorer


class Quantising(nn.Module):
    """Features of images quantised to 8 bits first, as InceptionV3 and DINOv2 take them."""

    name, sha256, img_channels = "quantising", "0" * 64, 1

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        pixels = (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # NaN -> 0
        return pixels.flatten(1)[:, :4].double() / 255


def scorer_of(network: Quantising) -> tuple[Scorer, torch.Tensor]:
    reference = torch.rand(40, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sums = FeatureSums(reference.sum(0), reference.T @ reference, 40)
    metrics = [Metric(METRICS["digits_fid"], network, Frechet(sums)),
               Metric(METRICS["kid"], network, KID(reference))]
    return Scorer(metrics), reference


def test_every_metric_of_a_network_is_fed_from_one_forward_per_batch():
    network = Quantising()
    scorer, reference = scorer_of(network)
    images = torch.rand(30, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    scorer.reset(names=["digits_fid", "kid"], total=30)
    for batch in images.split(10):
        scorer.update(batch)
    assert network.calls == 3  # one forward per batch, for both metrics
    values = scorer.values()
    assert values["kid"] == pytest.approx(mmd2_unbiased(network(images), reference), rel=1e-9)
    scorer.reset(total=30)  # a pass of the primary metric alone
    scorer.update(images)
    assert set(scorer.values()) == {"digits_fid"}
    assert scorer.compute() == pytest.approx(values["digits_fid"], rel=1e-12)


def test_non_finite_images_make_every_score_nan_even_where_features_are_finite():
    scorer, _ = scorer_of(Quantising())
    images = torch.rand(12, 1, 4, 4) * 2 - 1
    images[3, 0, 0, 0] = float("nan")  # the network reads it as black: finite features
    scorer.reset(names=["digits_fid", "kid"], total=12)
    scorer.update(images)
    assert all(math.isnan(v) for v in scorer.values().values())


def test_an_unknown_metric_in_a_pass_is_refused():
    scorer, _ = scorer_of(Quantising())
    with pytest.raises(KeyError, match="no metric 'fd_dinov2'"):
        scorer.reset(names=["fd_dinov2"])
