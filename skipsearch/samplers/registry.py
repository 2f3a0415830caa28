"""The sampler registry: each name's solver, exact NFE and options; batch generation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from ..models.denoiser import Denoiser
from ..precision import FP32, Precision
from .base import Denoise
from .dpmpp import dpmpp_2m_nfe, sample_dpmpp_2m
from .edm_stochastic import edm_stochastic_nfe, sample_edm_stochastic
from .euler import euler_nfe, sample_euler
from .heun import heun_nfe, sample_heun
from .names import SAMPLER_OPTIONS
from .seeds import PerImageNoise
from .unipc import sample_unipc, unipc_nfe


@dataclass(frozen=True)
class SamplerDef:
    """A sampler: its solver, its exact NFE as a function of steps, the options it takes.

    ``rounds_levels``: the solver raises noise levels itself (churn) and takes the network's
    ``round_sigma`` to keep them on the levels the network supports.
    """

    solve: Callable[..., torch.Tensor]
    nfe: Callable[[int], int]
    options: tuple[str, ...] = ()
    rounds_levels: bool = False


# Keyed and optioned by names.SAMPLER_OPTIONS, the one list of samplers and their options.
SAMPLERS: dict[str, SamplerDef] = {
    "euler": SamplerDef(sample_euler, euler_nfe),
    "heun": SamplerDef(sample_heun, heun_nfe),
    "edm_stochastic": SamplerDef(sample_edm_stochastic, edm_stochastic_nfe,
                                 SAMPLER_OPTIONS["edm_stochastic"], rounds_levels=True),
    "dpmpp_2m": SamplerDef(sample_dpmpp_2m, dpmpp_2m_nfe),
    "unipc": SamplerDef(sample_unipc, unipc_nfe, SAMPLER_OPTIONS["unipc"]),
}


def sampler_def(sampler: str) -> SamplerDef:
    """The registered sampler called ``sampler``; ValueError naming the choices otherwise."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[sampler]


def nfe_of(sampler: str, steps: int) -> int:
    """Exact network evaluations of ``sampler`` with ``steps`` steps."""
    return sampler_def(sampler).nfe(steps)


def checked_options(sampler: str, options: Mapping[str, float] | None) -> dict[str, float]:
    """``options`` as a dict; ValueError if ``sampler`` does not take one of them."""
    accepted = sampler_def(sampler).options
    given = dict(options or {})
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(f"sampler {sampler!r} does not take {', '.join(unknown)}; "
                         f"it takes: {', '.join(accepted) or 'no options'}")
    return given


def network_denoise(call: Callable[..., torch.Tensor], labels,
                    precision: Precision = FP32) -> Denoise:
    """The samplers' D(x; sigma) from ``call(x, sigma, labels)``, in x's dtype.

    A noise level shared by the whole batch (every step of every sampler here) reaches the
    network as one 0-dim float64 tensor, as EDM's ``edm_sampler`` passes it: the network
    embeds it once and broadcasts, so its float32 rounding is EDM's to the bit. Per-image
    levels (a tensor of B values) are passed through as they are.
    """
    layout = torch.channels_last if precision.channels_last else torch.contiguous_format

    def denoise(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if isinstance(sigma, torch.Tensor) and sigma.numel() > 1:
            level = sigma.to(x.device, torch.float64)
        else:  # a host number: filled on the device, never copied from the host
            level = torch.full((), float(sigma), dtype=torch.float64, device=x.device)
        x_in = x.to(torch.float32).contiguous(memory_format=layout)
        with precision.network_autocast(x.device):
            out = call(x_in, level, labels)
        return out.to(x.dtype)

    return denoise


def generate(denoiser: Denoiser, seeds: Sequence[int], sigmas: torch.Tensor,
             sampler: str = "heun", device: torch.device | str = "cpu",
             options: Mapping[str, float] | None = None, precision: Precision = FP32,
             network: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Images in [-1, 1] for ``seeds`` (conditioning from the seeds), float32 on ``device``.

    ``precision`` sets the network's autocast dtype, the integration dtype and the layout;
    ``network`` replaces ``denoiser(x, sigma, labels)`` (a compiled or graphed call of it).
    Nothing waits for the device: noise is drawn there, noise levels are host numbers.
    A pixel the sampler left NaN or infinite comes back NaN (not clamped into range).
    """
    solve = sampler_def(sampler).solve
    given = checked_options(sampler, options)
    if sampler_def(sampler).rounds_levels:
        given["round_sigma"] = denoiser.round_sigma
    shape = (denoiser.img_channels, denoiser.img_resolution, denoiser.img_resolution)
    noise = PerImageNoise(seeds, device)
    labels = denoiser.condition_for(seeds, device)
    levels = sigmas.to("cpu", torch.float64)
    # As EDM's sampler: positive levels rounded to those the network supports (iDDPM's grid).
    levels = torch.cat([denoiser.round_sigma(levels[:-1]), levels[-1:]])
    denoise = network_denoise(denoiser if network is None else network, labels, precision)
    x_T = noise.latents(shape).to(precision.sampler_dtype) * float(levels[0])
    x = solve(denoise, x_T, levels, noise, **given)
    images = denoiser.decode(x.to(torch.float32)).to(torch.float32)
    # Clamp what is finite; NaN and inf become NaN, so FID turns NaN and the trial fails.
    return torch.where(torch.isfinite(images), images.clamp(-1.0, 1.0), torch.nan)

