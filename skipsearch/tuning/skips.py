"""Skip-Tuning hooks: scale the skip channels of a UNet's decoder inputs by rho_i.

A decoder block whose input is ``concat([h, d_i])`` gets a forward pre-hook that multiplies the
trailing ``d_i`` channels by ``rho_i`` (Ma et al. 2024, Sec. 3). Skips are listed bottom to top:
index 0 is the skip next to the bottleneck. The features are joined along ``feature_dim``: dim 1
for UNets (B, C, H, W), the last dim for transformers whose long skips join token features
(U-ViT's ``skip_linear(cat([x, skip], dim=-1))``, input (B, L, 2D)). Usage::

    with skip_tuning(denoiser, denoiser.skips, coefficients):
        images = sampler(denoiser, latents, sigmas, class_labels)

The coefficients, the noise window and the profile live in tensors on the model's device, and
the hooks do the same tensor arithmetic whatever their values: loading another schedule is an
in-place copy, so a compiled model or a captured CUDA graph keeps working across schedules.
Under ``torch.no_grad()`` the scaling happens in place on the freshly concatenated block input;
with autograd recording it is out of place, so gradients see it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .schedule import TIME_PROFILES, SkipSchedule, check_coefficients


@dataclass(frozen=True)
class SkipPoint:
    """One encoder-to-decoder skip: the decoder module whose input carries it, bottom to top."""

    index: int
    level: int
    resolution: int
    skip_channels: int
    in_channels: int
    module_name: str
    feature_dim: int = 1  # the axis of the block input holding [h, d_i]: 1 (NCHW) or -1 (tokens)


SigmaOf = Callable[[tuple, dict], torch.Tensor | float | None]
# Where a schedule applies, as numbers: window (lo, hi), profile range (of log sigma, or of
# sigma when ``linear`` is 1), weight a + b t.
WHERE_FIELDS = ("sigma_lo", "sigma_hi", "log_lo", "log_hi", "a", "b", "linear")


def denoiser_sigma(args: tuple, kwargs: dict) -> torch.Tensor | float | None:
    """The noise level of a ``Denoiser`` call ``D(x, sigma, class_labels)``."""
    return kwargs["sigma"] if "sigma" in kwargs else (args[1] if len(args) > 1 else None)


def where_values(schedule: SkipSchedule) -> tuple[float, ...]:
    """A schedule's window and profile as the numbers ``effective_coefficients`` reads."""
    lo, hi = schedule.window if schedule.window is not None else (0.0, math.inf)
    if schedule.profile == "constant":
        return (lo, hi, 0.0, 1.0, 1.0, 0.0, 0.0)
    linear = schedule.profile in TIME_PROFILES
    p_lo, p_hi = (schedule.profile_range if linear
                  else (math.log(v) for v in schedule.profile_range))
    a, b = (0.0, 1.0) if schedule.profile in ("rising", "rising_time") else (1.0, -1.0)
    return (lo, hi, p_lo, p_hi, a, b, float(linear))


def effective_coefficients(sigma: torch.Tensor, rho: torch.Tensor,
                           where: torch.Tensor) -> torch.Tensor:
    """rho_i w + (1 - w) per noise level, shape (len(sigma), len(rho)); tensor ops only.

    ``w`` is 0 outside the window and ``a + b t`` inside, t = log sigma (or sigma, for a
    profile linear in time) placed in the profile's range and clamped to [0, 1]
    (SkipSchedule.noise_weight, without branches).
    """
    lo, hi, log_lo, log_hi, a, b, linear = where.unbind()
    sigma = sigma.to(rho.dtype).reshape(-1, 1)
    x = torch.where(linear > 0, sigma, sigma.clamp_min(1e-12).log())
    t = ((x - log_lo) / (log_hi - log_lo)).clamp(0.0, 1.0)
    w = torch.where((sigma >= lo) & (sigma <= hi), a + b * t, torch.zeros_like(t))
    return rho * w + (1.0 - w)


def _scale_skip(point: SkipPoint, x: torch.Tensor, rho: torch.Tensor):
    """The block input with its trailing ``point.skip_channels`` multiplied by ``rho`` (B or 1).

    The channels lie along ``point.feature_dim``; rho has one value per image (or one for all).
    """
    dim = point.feature_dim % x.ndim
    if x.shape[dim] != point.in_channels:
        raise RuntimeError(f"{point.module_name} got {x.shape[dim]} input channels, "
                           f"expected {point.in_channels} (decoder + skip)")
    split = point.in_channels - point.skip_channels
    if rho.shape[0] not in (1, x.shape[0]):  # a model that batches several passes (guidance)
        rho = rho.repeat(x.shape[0] // rho.shape[0])
    rho = rho.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    skip = x.narrow(dim, split, point.skip_channels)
    if torch.is_grad_enabled() and x.requires_grad:
        # Out of place, so autograd records the scaling.
        return torch.cat([x.narrow(dim, 0, split), skip * rho], dim=dim)
    # Sampling: the input is the freshly concatenated [h, skip]; scaling its skip channels
    # in place saves a full read and write of the block input.
    skip.mul_(rho)
    return None


class SkipHooks:
    """Hooks on one model that scale its skips by the loaded schedule; ``remove()`` undoes them.

    Registered once, they can serve many schedules: ``load`` copies a schedule into the
    coefficient tensors in place, ``tuning`` loads one for a ``with`` block.
    """

    def __init__(self, model: nn.Module, skips: Sequence[SkipPoint],
                 schedule: SkipSchedule | Sequence[float] | None = None,
                 sigma_of: SigmaOf = denoiser_sigma):
        self.skips, self.sigma_of = list(skips), sigma_of
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.schedule, self.needs_sigma = SkipSchedule.identity(len(self.skips)), False
        # FreeU's (b, s) per skip (None where it does not act); () without FreeU
        self.freeu_factors: tuple[tuple[float, float] | None, ...] = ()
        self.rho = torch.tensor(self.schedule.coefficients, dtype=torch.float64, device=device)
        self.where = torch.tensor(where_values(self.schedule), dtype=torch.float64,
                                  device=device)
        self.effective = self.rho[None]
        if schedule is not None:
            self.load(schedule)
        self.handles: list = []
        modules = dict(model.named_modules())
        try:
            self.handles.append(model.register_forward_pre_hook(self._at_call, with_kwargs=True))
            for i, point in enumerate(self.skips):
                self.handles.append(
                    modules[point.module_name].register_forward_pre_hook(self._hook(i, point)))
        except BaseException:
            self.remove()
            raise

    def load(self, schedule: SkipSchedule | Sequence[float]) -> None:
        """Copy ``schedule`` into the coefficient tensors (in place: graphs keep reading them)."""
        if not isinstance(schedule, SkipSchedule):
            schedule = SkipSchedule(tuple(float(c) for c in schedule))
        if len(schedule.coefficients) != len(self.skips):
            raise ValueError(f"got {len(schedule.coefficients)} coefficients for a model "
                             f"with {len(self.skips)} skips")
        values = torch.tensor([*schedule.coefficients, *where_values(schedule)],
                              dtype=torch.float64)
        k = len(self.skips)
        factors = self._freeu(schedule)  # a U-ViT refuses FreeU before anything changes
        self.rho.copy_(values[:k])
        self.where.copy_(values[k:])
        self.schedule, self.needs_sigma = schedule, schedule.depends_on_sigma
        self.freeu_factors = factors

    def _freeu(self, schedule: SkipSchedule) -> tuple[tuple[float, float] | None, ...]:
        """FreeU's (b, s) at each skip under ``schedule`` (None where it does not act)."""
        if not schedule.uses_freeu:
            return ()
        from .freeu import FreeU, freeu_factors

        factors = freeu_factors(FreeU.from_dict(schedule.freeu), self.skips)
        return tuple(factors.get(p.index) for p in self.skips)

    @contextlib.contextmanager
    def tuning(self, schedule: SkipSchedule | Sequence[float]) -> Iterator[None]:
        """Apply ``schedule`` inside the block; the identity again after it."""
        self.load(schedule)
        try:
            yield
        finally:
            self.load(SkipSchedule.identity(len(self.skips)))

    def _at_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Set the effective coefficients for the noise level(s) of this model call.

        They are computed from sigma for every schedule (a constant one gives rho exactly), so
        a compiled or captured call stays right when a window or profile is loaded later.
        """
        sigma = self.sigma_of(args, kwargs)
        if sigma is None:
            if self.needs_sigma:
                raise RuntimeError("this schedule depends on sigma, but the call carries none")
            self.effective = self.rho[None]
            return
        sigma = torch.as_tensor(sigma, device=self.rho.device)
        self.effective = effective_coefficients(sigma, self.rho, self.where)

    def _hook(self, i: int, point: SkipPoint):
        """The pre-hook of the decoder block of skip ``i`` (FreeU first where it is loaded)."""
        from .freeu import freeu_block_input  # here: freeu.py imports this module

        def hook(module: nn.Module, args: tuple):
            factors = self.freeu_factors[i] if self.freeu_factors else None
            x = args[0] if factors is None else freeu_block_input(args[0], point, *factors)
            scaled = _scale_skip(point, x, self.effective[:, i])
            if scaled is not None:
                return (scaled, *args[1:])
            return None if factors is None else (x, *args[1:])

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
    """Scale skip ``skips[i]`` by the schedule's rho_i inside its block; hooks always removed.

    ValueError unless the schedule has one finite coefficient in ``RHO_RANGE`` per skip.
    """
    values = schedule.coefficients if isinstance(schedule, SkipSchedule) else \
        tuple(float(c) for c in schedule)
    check_coefficients(values, len(skips))
    hooks = SkipHooks(model, skips, schedule, sigma_of)
    try:
        yield model
    finally:
        hooks.remove()
