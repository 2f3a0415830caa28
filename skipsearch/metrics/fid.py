"""A scorer of one Frechet distance on a given feature network and reference sums."""

from __future__ import annotations

import torch
from torch import nn

from .frechet import Frechet
from .reference import FeatureSums
from .registry import METRICS
from .scorer import Metric, Scorer


class FIDScorer(Scorer):
    """A ``Scorer`` holding one Frechet distance: ``extractor``'s features against ``reference``.

    Named ``fid`` for InceptionV3 and ``digits_fid`` for any other network (as the digits
    classifier's metric), which is what a study records of it.
    """

    def __init__(self, extractor: nn.Module, reference: FeatureSums,
                 device: torch.device | str = "cpu") -> None:
        name = "fid" if getattr(extractor, "name", "").startswith("inception") else "digits_fid"
        super().__init__([Metric(METRICS[name], extractor, Frechet(FeatureSums(
            reference.total.to(device), reference.outer.to(device), reference.count)))], device)
        self.extractor, self.reference = extractor, reference
