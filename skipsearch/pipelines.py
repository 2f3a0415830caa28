"""Skip-Tuning on a diffusers pipeline, in the spirit of ``enable_freeu`` / ``disable_freeu``.

Usage::

    import skipsearch
    skipsearch.apply(pipe, "exports/my-study/best.yaml")   # or a SkipSchedule, or coefficients
    images = pipe(prompt).images
    skipsearch.remove(pipe)

The hooks live on ``pipe.unet`` (one attribute), so applying again replaces them. Noise-level
windows and profiles see the sigma of each UNet call, mapped from its timestep through
``pipe.scheduler.alphas_cumprod``. diffusers is imported only when these functions run.
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


def timestep_sigma_of(pipe: Any) -> SigmaOf:
    """``sigma_of`` for SkipHooks: a UNet call's timestep to sigma via the pipe's scheduler."""
    from .models.diffusers_unet import timestep_to_sigma, vp_sigmas

    log_sigmas = vp_sigmas(pipe.scheduler.alphas_cumprod).log()  # once, not per UNet call

    def sigma_of(args: tuple, kwargs: dict) -> torch.Tensor | None:
        t = call_timestep(args, kwargs)
        if t is None:
            return None
        return timestep_to_sigma(torch.as_tensor(t).detach().cpu(), log_sigmas)

    return sigma_of


def apply(pipe: Any, schedule: ScheduleLike) -> SkipHooks:
    """Scale the skips of ``pipe.unet`` by ``schedule`` until ``remove(pipe)``; replaces hooks.

    A schedule with the wrong count for this UNet, or a coefficient that is not a finite
    number in ``RHO_RANGE``, raises ValueError before any hook is placed.
    """
    from .models.diffusers_unet import find_diffusers_skips

    unet = getattr(pipe, "unet", None)
    if unet is None:
        raise TypeError(f"{type(pipe).__name__} has no unet; Skip-Tuning needs a UNet pipeline")
    schedule = as_schedule(schedule)
    skips = find_diffusers_skips(unet)
    check_coefficients(schedule.coefficients, len(skips))
    if schedule.depends_on_sigma and not hasattr(getattr(pipe, "scheduler", None),
                                                 "alphas_cumprod"):
        raise TypeError("a noise window or profile needs pipe.scheduler.alphas_cumprod to map "
                        "timesteps to sigma; this pipeline's scheduler has none")
    remove(pipe)
    # sigma is read only by schedules that depend on it; others never call sigma_of.
    hooks = SkipHooks(unet, skips, schedule,
                      timestep_sigma_of(pipe) if schedule.depends_on_sigma else call_timestep)
    setattr(unet, HOOKS_ATTRIBUTE, hooks)
    return hooks


def remove(pipe: Any) -> None:
    """Take the Skip-Tuning hooks off ``pipe.unet``; does nothing when there are none."""
    unet = getattr(pipe, "unet", None)
    hooks = vars(unet).pop(HOOKS_ATTRIBUTE, None) if unet is not None else None
    if hooks is not None:
        hooks.remove()
