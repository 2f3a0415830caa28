"""Types shared by the samplers: the denoiser D(x; sigma), the noise source, the step callback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Step:
    """One step of a sampler, as its callback sees it (the tensors are the sampler's own).

    ``i`` counts from 0; ``t_cur`` and ``t_next`` are ``sigmas[i]`` and ``sigmas[i + 1]``;
    ``x_cur`` is the state at ``t_cur`` and ``x_next`` the state the step ends in;
    ``denoised`` is the step's first network output D(x_cur; t_cur). EDM's stochastic sampler
    evaluates it after churn, at (x_hat, t_hat). UniPC's x_cur is the corrected state (but on
    the last step, whose correction would change nothing, the predicted one), its ``denoised``
    is D at the predicted state (which the corrector reuses), and its x_next a prediction.
    """

    i: int
    t_cur: torch.Tensor
    t_next: torch.Tensor
    x_cur: torch.Tensor
    x_next: torch.Tensor
    denoised: torch.Tensor


StepCallback = Callable[[Step], None]


def reject_options(sampler: str, options: Mapping[str, object]) -> None:
    """Raise TypeError if a sampler without options was given some."""
    if options:
        raise TypeError(f"{sampler} takes no options, got {', '.join(sorted(options))}")
