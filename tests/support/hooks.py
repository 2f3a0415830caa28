"""Skip hooks on a loaded denoiser: rho = 1 must change nothing, then the output under rhos."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from skipsearch.tuning.skips import skip_tuning


def plain_and_hooked(denoiser, x, sigma, labels,
                     rhos: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The output without hooks and under ``rhos``; asserts rho = 1 leaves it bit-identical."""
    plain = denoiser(x, sigma, labels)
    with skip_tuning(denoiser, denoiser.skips, [1.0] * len(rhos)):
        assert torch.equal(denoiser(x, sigma, labels), plain)
    with skip_tuning(denoiser, denoiser.skips, rhos):
        return plain, denoiser(x, sigma, labels)
