"""Types shared by the samplers: the denoiser D(x; sigma) and the per-image noise source."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[torch.Tensor], torch.Tensor]


def reject_options(sampler: str, options: Mapping[str, object]) -> None:
    """Raise TypeError if a sampler without options was given some."""
    if options:
        raise TypeError(f"{sampler} takes no options, got {', '.join(sorted(options))}")
