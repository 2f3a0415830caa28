"""Batch generation: a denoiser, seeds and a sampler to images, under a precision policy.

The samplers (``skipsearch.samplers``) are the math; this module is the policy around them:
option checking, the network call in the samplers' D(x; sigma) form, noise per seed, the
levels rounded to the network's, decoding and clamping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from ..models.denoiser import Denoiser
from ..samplers.base import Denoise, StepCallback
from ..samplers.registry import sampler_def
from ..samplers.seeds import PerImageNoise
from .precision import FP32, Precision


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
             network: Callable[..., torch.Tensor] | None = None,
             callback: StepCallback | None = None) -> torch.Tensor:
    """Images in [-1, 1] for ``seeds`` (conditioning from the seeds), float32 on ``device``.

    ``precision`` sets the network's autocast dtype, the integration dtype and the layout;
    ``network`` replaces ``denoiser(x, sigma, labels)`` (a compiled or graphed call of it);
    ``callback`` is handed to the sampler (called once per step, see ``samplers.base.Step``).
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
    x = solve(denoise, x_T, levels, noise, callback=callback, **given)
    images = denoiser.decode(x.to(torch.float32)).to(torch.float32)
    # Clamp what is finite; NaN and inf become NaN, so FID turns NaN and the trial fails.
    return torch.where(torch.isfinite(images), images.clamp(-1.0, 1.0), torch.nan)

