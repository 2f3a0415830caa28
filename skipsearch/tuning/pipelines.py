"""Skip-Tuning on a diffusers pipeline or UNet, in the spirit of ``enable_freeu``.

Usage::

    import skipsearch
    skipsearch.apply(pipe, "exports/my-study/best.yaml")   # or a SkipSchedule, or coefficients
    images = pipe(prompt).images
    skipsearch.remove(pipe)

    with skipsearch.apply(pipe.unet, schedule, scheduler=pipe.scheduler):  # a bare UNet
        images = pipe(prompt).images                                      # removed on exit

    hooks = skipsearch.apply(pipe, schedule)       # a schedule searched with its guidance:
    images = pipe(prompt, **hooks.call_kwargs).images  # guidance_scale=... as it was found

The hooks live on the UNet (one attribute), so applying again replaces them. Noise-level
windows and profiles see the sigma of each UNet call, mapped from its timestep through the
scheduler's ``alphas_cumprod`` (the pipeline's, or the one given). diffusers is imported only
when these functions run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .schedule import SkipSchedule, check_coefficients
from .schedule_file import ExportedSchedule, load_schedule
from .skips import SigmaOf, SkipHooks

HOOKS_ATTRIBUTE = "_skipsearch_skip_hooks"
ScheduleLike = SkipSchedule | ExportedSchedule | Sequence[float] | str | Path


def as_schedule(schedule: ScheduleLike) -> SkipSchedule:
    """A SkipSchedule from a schedule, an exported schedule, its YAML path or coefficients."""
    if isinstance(schedule, SkipSchedule):
        return schedule
    if isinstance(schedule, ExportedSchedule):
        return schedule.schedule
    if isinstance(schedule, (str, Path)):
        return load_schedule(schedule).schedule
    return SkipSchedule(tuple(float(c) for c in schedule))


def call_timestep(args: tuple, kwargs: dict) -> Any:
    """The timestep of a UNet call ``unet(sample, timestep, ...)``, positional or keyword."""
    return kwargs["timestep"] if "timestep" in kwargs else (args[1] if len(args) > 1 else None)


def timestep_sigma_of(scheduler: Any) -> SigmaOf:
    """``sigma_of`` for SkipHooks: a UNet call's timestep to sigma via ``scheduler``."""
    from ..models.diffusers_unet import timestep_to_sigma, vp_sigmas

    log_sigmas = vp_sigmas(scheduler.alphas_cumprod).log()  # once, not per UNet call

    def sigma_of(args: tuple, kwargs: dict) -> torch.Tensor | None:
        t = call_timestep(args, kwargs)
        if t is None:
            return None
        return timestep_to_sigma(torch.as_tensor(t).detach().cpu(), log_sigmas)

    return sigma_of


class AppliedHooks(SkipHooks):
    """The hooks ``apply`` placed on a UNet; ``with apply(...):`` takes them off on exit."""

    def __init__(self, unet: Any, *args: Any) -> None:
        super().__init__(unet, *args)
        self.unet = unet

    def __enter__(self) -> AppliedHooks:
        return self

    @property
    def call_kwargs(self) -> dict[str, float]:
        """What the schedule sets in the pipeline's call: ``pipe(prompt, **hooks.call_kwargs)``.

        The guidance weight the schedule was found with, where it records one.
        """
        weight = self.schedule.guidance_scale
        return {} if weight is None else {"guidance_scale": weight}

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hooks, and the UNet's note of them if it still names these."""
        super().remove()
        if vars(self.unet).get(HOOKS_ATTRIBUTE) is self:
            del vars(self.unet)[HOOKS_ATTRIBUTE]


def unet_of(target: Any) -> Any:
    """The UNet of a pipeline (``.unet``), or ``target`` itself when it is a diffusers UNet."""
    unet = getattr(target, "unet", None)
    if unet is None and hasattr(target, "up_blocks") and hasattr(target, "down_blocks"):
        return target
    if unet is None:
        raise TypeError(f"{type(target).__name__} is neither a pipeline with a unet nor a "
                        "diffusers UNet (UNet2DModel, UNet2DConditionModel)")
    return unet


def find_skips(target: Any) -> list:
    """The skip points of a pipeline's UNet or a diffusers UNet, in the decoder's order of use."""
    from ..models.diffusers_unet import find_diffusers_skips

    return find_diffusers_skips(unet_of(target))


def apply(target: Any, schedule: ScheduleLike, scheduler: Any = None) -> AppliedHooks:
    """Scale the skips of a pipeline's UNet (or a bare UNet) by ``schedule``; replaces hooks.

    They stay until ``remove(target)``, ``hooks.remove()``, or the end of a ``with`` block
    around the call. A noise window or profile maps each call's timestep to sigma through
    ``scheduler`` (by default the pipeline's). A schedule with the wrong count for this UNet,
    or a coefficient that is not a finite number in ``RHO_RANGE``, raises ValueError before
    any hook is placed.
    """
    from ..models.diffusers_unet import find_diffusers_skips

    unet = unet_of(target)
    scheduler = scheduler if scheduler is not None else getattr(target, "scheduler", None)
    schedule = as_schedule(schedule)
    skips = find_diffusers_skips(unet)
    check_coefficients(schedule.coefficients, len(skips))
    if schedule.depends_on_sigma and not hasattr(scheduler, "alphas_cumprod"):
        raise TypeError("a noise window or profile maps timesteps to sigma through a "
                        "scheduler's alphas_cumprod; give a pipeline whose scheduler has one, "
                        "or scheduler= with a bare UNet")
    remove(unet)
    # sigma is read only by schedules that depend on it; others never call sigma_of.
    sigma_of = timestep_sigma_of(scheduler) if schedule.depends_on_sigma else call_timestep
    hooks = AppliedHooks(unet, skips, schedule, sigma_of)
    setattr(unet, HOOKS_ATTRIBUTE, hooks)
    return hooks


def remove(target: Any) -> None:
    """Take the Skip-Tuning hooks off a pipeline's UNet (or a UNet); nothing if there are none."""
    unet = getattr(target, "unet", None)
    unet = target if unet is None else unet
    hooks = vars(unet).get(HOOKS_ATTRIBUTE) if hasattr(unet, "__dict__") else None
    if hooks is not None:
        hooks.remove()
