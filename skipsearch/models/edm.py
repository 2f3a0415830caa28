"""NVlabs EDM checkpoints (``network-snapshot-*.pkl``) without the EDM repository installed.

A snapshot is a dict whose ``ema`` entry is a preconditioning wrapper (``EDMPrecond``,
``VPPrecond``, ``VEPrecond`` or ``iDDPMPrecond``) around a ``SongUNet`` (DDPM++, NCSN++) or a
``DhariwalUNet`` (ADM), all in ``torch_utils.persistence`` format (see ``persistence.py``).
The skips are found by name and structure (``enc``/``dec`` module dicts keyed
``{res}x{res}_...``, decoder blocks whose ``in_channels`` exceed the running channel count),
never by isinstance, and from nothing but what EDM's classes store: the UNets keep no image
resolution, so it is read from the block names.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import nn

from ..configuration.errors import ConfigError
from ..tuning.skips import SkipPoint
from .denoiser import Denoiser, trained_range
from .persistence import read_nvlabs_pickle

_BLOCK_NAME = re.compile(r"^(\d+)x(\d+)_")
EXPECTED = "an NVlabs EDM"


def read_edm_pickle(path: Path, trust: bool, key: str = "model.path") -> nn.Module:
    """The ``ema`` network of an EDM snapshot (or the pickled network itself)."""
    data = read_nvlabs_pickle(path, trust, EXPECTED, key)
    net = data.get("ema") if isinstance(data, dict) else data
    if not isinstance(net, nn.Module) or not isinstance(getattr(net, "model", None), nn.Module):
        raise ConfigError(key, str(path), "expected an NVlabs EDM snapshot: a dict whose 'ema' "
                          "entry is a preconditioning wrapper with a 'model' UNet, found "
                          f"{type(net).__name__}")
    return net


def block_resolution(name: str) -> int:
    """The resolution in an EDM block name ``{res}x{res}_...``."""
    match = _BLOCK_NAME.match(name)
    if match is None:
        raise ValueError(f"block {name!r} is not named {{res}}x{{res}}_...")
    return int(match.group(1))


def find_edm_skips(net: nn.Module, prefix: str = "model.") -> list[SkipPoint]:
    """Skips of a SongUNet or DhariwalUNet inside an EDM preconditioning wrapper, bottom first.

    Decoder blocks whose ``in_channels`` differ from the running channel count take
    ``concat([x, skips.pop()])``; the encoder outputs are pushed in ``enc`` order.
    """
    unet = net.model
    if not all(isinstance(getattr(unet, n, None), nn.ModuleDict) for n in ("enc", "dec")):
        raise ValueError(f"{type(unet).__name__} has no enc/dec module dicts")
    top = block_resolution(next(iter(unet.enc)))
    stack = []
    for name, block in unet.enc.items():
        if "aux" in name:
            continue
        stack.append(_out_channels(block))
    points, channels = [], stack[-1]  # the decoder starts from the last encoder output
    for name, block in unet.dec.items():
        if "aux" in name:
            continue
        in_ch = block.in_channels
        if in_ch != channels:
            skip_ch = stack.pop()
            if in_ch - channels != skip_ch:
                raise ValueError(f"dec.{name} takes {in_ch} channels: {channels} + a skip of "
                                 f"{in_ch - channels}, but the encoder gives {skip_ch}")
            res = block_resolution(name)
            level = round(math.log2(top / res))
            points.append(SkipPoint(len(points), level, res, skip_ch, in_ch,
                                    f"{prefix}dec.{name}"))
        channels = block.out_channels
    if stack:
        raise ValueError(f"{len(stack)} encoder outputs were never consumed by the decoder")
    return points


def _out_channels(block: nn.Module) -> int:
    """Output channels of an encoder entry (a UNet block or a plain convolution)."""
    for attr in ("out_channels", "out_ch"):
        if isinstance(getattr(block, attr, None), int):
            return getattr(block, attr)
    raise ValueError(f"cannot tell the output channels of {type(block).__name__}")


class EDMNetworkDenoiser(Denoiser):
    """An EDM preconditioned network (EDM/VP/VE/iDDPM Precond) as a Denoiser."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.img_channels = int(net.img_channels)
        self.img_resolution = int(net.img_resolution)
        self.label_dim = int(net.label_dim)
        self.sigma_data = float(getattr(net, "sigma_data", 0.5))  # VP, VE, iDDPM keep none
        # EDMPrecond keeps (0, inf): any level; VP, VE and iDDPM the ends of their training.
        self.sigma_range = trained_range(getattr(net, "sigma_min", None),
                                         getattr(net, "sigma_max", None))
        self.skips = find_edm_skips(net, prefix="net.model.")

    def forward(self, x: torch.Tensor, sigma: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x; sigma) from the wrapper's own preconditioning, in float32."""
        return self.net(x.to(torch.float32), sigma.to(torch.float32), class_labels).to(
            torch.float32)

    def round_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """The wrapper's own rounding: iDDPM's nearest trained level, the identity otherwise.

        A positive level that would round to iDDPM's level 0 (below its sigma_min) is kept as
        it is: a zero inside the discretization would divide by zero.
        """
        rounded = torch.as_tensor(self.net.round_sigma(sigma), dtype=sigma.dtype)
        return torch.where((rounded > 0) | (sigma <= 0), rounded, sigma)


def load_edm_denoiser(path: Path, trust: bool) -> EDMNetworkDenoiser:
    """The EDM network at ``path`` as a Denoiser in eval mode."""
    net = read_edm_pickle(path, trust)
    try:
        denoiser = EDMNetworkDenoiser(net)
    except (AttributeError, ValueError, TypeError) as err:
        raise ConfigError("model.path", str(path), f"expected an NVlabs EDM network "
                          f"(img_channels, img_resolution, label_dim on the wrapper; enc/dec "
                          f"blocks in the UNet), but {err}") from None
    return denoiser.eval().requires_grad_(False)
