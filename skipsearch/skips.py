"""Skip-Tuning hooks: scale the skip channels of a UNet's decoder inputs by rho_i.

A decoder block whose input is ``concat([h, d_i])`` gets a forward pre-hook that multiplies the
trailing ``d_i`` channels by ``rho_i`` (Ma et al. 2024, Sec. 3). Skips are listed bottom to top:
index 0 is the skip next to the bottleneck. Usage::

    with skip_tuning(denoiser, denoiser.skips, coefficients):
        images = sampler(denoiser, latents, sigmas, class_labels)

Under ``torch.no_grad()`` the scaling happens in place on the freshly concatenated block input;
with autograd recording it is out of place, so gradients see it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .schedule import SkipSchedule


@dataclass(frozen=True)
class SkipPoint:
    """One encoder-to-decoder skip: the decoder module whose input carries it, bottom to top."""

    index: int
    level: int
    resolution: int
    skip_channels: int
    in_channels: int
    module_name: str


Coefficient = float | torch.Tensor
SigmaOf = Callable[[tuple, dict], torch.Tensor | float | None]


def denoiser_sigma(args: tuple, kwargs: dict) -> torch.Tensor | float | None:
    """The noise level of a ``Denoiser`` call ``D(x, sigma, class_labels)``."""
    return kwargs["sigma"] if "sigma" in kwargs else (args[1] if len(args) > 1 else None)


def _scale_skip(point: SkipPoint, x: torch.Tensor, rho: Coefficient):
    """The block input with its trailing ``point.skip_channels`` multiplied by ``rho``."""
    if x.shape[1] != point.in_channels:
        raise RuntimeError(f"{point.module_name} got {x.shape[1]} input channels, "
                           f"expected {point.in_channels} (decoder + skip)")
    split = point.in_channels - point.skip_channels
    if not isinstance(rho, torch.Tensor) and rho == 1.0:
        return None  # the identity: nothing to scale
    if isinstance(rho, torch.Tensor):
        rho = rho.to(device=x.device, dtype=x.dtype)
        if rho.shape[0] != x.shape[0]:  # a model that batches several passes, e.g. guidance
            rho = rho.repeat(x.shape[0] // rho.shape[0], 1, 1, 1)
    if torch.is_grad_enabled() and x.requires_grad:
        # Out of place, so autograd records the scaling.
        return torch.cat([x[:, :split], x[:, split:] * rho], dim=1)
    # Sampling: the input is the freshly concatenated [h, skip]; scaling its skip channels
    # in place saves a full read and write of the block input.
    x[:, split:].mul_(rho)
    return None


class SkipHooks:
    """A schedule's hooks on one model; ``remove()`` takes every one of them off."""

    def __init__(self, model: nn.Module, skips: Sequence[SkipPoint],
                 schedule: SkipSchedule | Sequence[float], sigma_of: SigmaOf = denoiser_sigma):
        if not isinstance(schedule, SkipSchedule):
            schedule = SkipSchedule(tuple(float(c) for c in schedule))
        if len(schedule.coefficients) != len(skips):
            raise ValueError(f"got {len(schedule.coefficients)} coefficients for a model "
                             f"with {len(skips)} skips")
        self.schedule, self.sigma_of = schedule, sigma_of
        self.rho: list[Coefficient] = list(schedule.coefficients)
        self.handles: list = []
        modules = dict(model.named_modules())
        try:
            if schedule.depends_on_sigma:
                self.handles.append(
                    model.register_forward_pre_hook(self._at_call, with_kwargs=True))
            for i, point in enumerate(skips):
                self.handles.append(
                    modules[point.module_name].register_forward_pre_hook(self._hook(i, point)))
        except BaseException:
            self.remove()
            raise

    def _at_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Set the effective coefficients for the noise level of this model call."""
        sigma = self.sigma_of(args, kwargs)
        if sigma is None:
            raise RuntimeError("this schedule depends on sigma, but the call carries none")
        values = torch.as_tensor(sigma, dtype=torch.float64).flatten().tolist()
        if len(set(values)) == 1:
            self.rho = list(self.schedule.at_sigma(values[0]))
            return
        per_sample = torch.tensor([self.schedule.at_sigma(v) for v in values])
        self.rho = [per_sample[:, i].reshape(-1, 1, 1, 1) for i in range(per_sample.shape[1])]

    def _hook(self, i: int, point: SkipPoint):
        """The pre-hook of the decoder block of skip ``i``."""

        def hook(module: nn.Module, args: tuple):
            scaled = _scale_skip(point, args[0], self.rho[i])
            return None if scaled is None else (scaled, *args[1:])

        return hook

    def remove(self) -> None:
        """Remove every hook this object registered."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@contextlib.contextmanager
def skip_tuning(model: nn.Module, skips: Sequence[SkipPoint],
                schedule: SkipSchedule | Sequence[float],
                sigma_of: SigmaOf = denoiser_sigma) -> Iterator[nn.Module]:
    """Scale skip ``skips[i]`` by the schedule's rho_i inside its block; hooks always removed."""
    hooks = SkipHooks(model, skips, schedule, sigma_of)
    try:
        yield model
    finally:
        hooks.remove()
