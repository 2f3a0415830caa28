"""The bundled model: a small class-conditional UNet for 16x16 digits, EDM-preconditioned.

Every encoder output (the input convolution, each encoder block and each downsampling) is kept
and fed to one decoder block as ``concat([h, skip])``, as in EDM's ADM and DDPM++ networks, so
the Skip-Tuning hooks find ``len(skips) == levels * (blocks_per_level + 1)`` split points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..tuning.skips import SkipPoint


@dataclass(frozen=True)
class DigitsUNetConfig:
    """Architecture of the digits UNet; stored in the weights file's metadata."""

    img_resolution: int = 16
    img_channels: int = 1
    label_dim: int = 10
    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    blocks_per_level: int = 1
    emb_dim: int = 128

    def to_dict(self) -> dict:
        """A JSON-friendly dict of the config."""
        return asdict(self)


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups that divide the channel count."""
    groups = math.gcd(8, channels)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Pre-activation residual block with an additive noise/class embedding."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm0 = _norm(in_channels)
        self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.affine = nn.Linear(emb_dim, out_channels)
        self.norm1 = _norm(out_channels)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Two 3x3 convolutions with the embedding added between them."""
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.affine(emb)[:, :, None, None]
        h = self.conv1(F.silu(self.norm1(h)))
        return (h + self.shortcut(x)) / math.sqrt(2)


class Downsample(nn.Module):
    """Halve the resolution with a strided 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Strided convolution; ``emb`` is unused."""
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest neighbour, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest-neighbour upsampling and a convolution."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def fourier_embedding(c_noise: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the noise conditioning c_noise, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=c_noise.device) / half)
    angles = c_noise.float()[:, None] * freqs[None, :] * 1000.0
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class DigitsUNet(nn.Module):
    """The raw network F(c_in x; c_noise, class) of the digits model."""

    def __init__(self, config: DigitsUNetConfig) -> None:
        super().__init__()
        self.config = config
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.label_dim = config.label_dim
        ch = [config.model_channels * m for m in config.channel_mult]
        emb = config.emb_dim
        self.map_noise = nn.Sequential(nn.Linear(32, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.map_label = nn.Linear(config.label_dim, emb, bias=False)
        self.conv_in = nn.Conv2d(config.img_channels, ch[0], 3, padding=1)

        # Encoder: record the channels of every output pushed onto the skip stack.
        self.enc = nn.ModuleList()
        stack = [(ch[0], 0)]
        cur = ch[0]
        for level, out in enumerate(ch):
            blocks = nn.ModuleList()
            if level > 0:
                blocks.append(Downsample(cur))
                stack.append((cur, level))
            for _ in range(config.blocks_per_level):
                blocks.append(ResBlock(cur, out, emb))
                cur = out
                stack.append((cur, level))
            self.enc.append(blocks)

        self.mid = nn.ModuleList([ResBlock(cur, cur, emb), ResBlock(cur, cur, emb)])

        # Decoder: each block pops one skip; bookkeeping gives the hooks their split points.
        self.dec = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.skips: list[SkipPoint] = []
        for level in reversed(range(len(ch))):
            blocks = nn.ModuleList()
            for j in range(config.blocks_per_level + 1):
                skip_ch, skip_level = stack.pop()
                assert skip_level == level
                blocks.append(ResBlock(cur + skip_ch, ch[level], emb))
                self.skips.append(SkipPoint(
                    index=len(self.skips), level=level,
                    resolution=config.img_resolution >> level, skip_channels=skip_ch,
                    in_channels=cur + skip_ch, module_name=f"dec.{len(self.dec)}.{j}",
                ))
                cur = ch[level]
            self.dec.append(blocks)
            self.ups.append(Upsample(cur) if level > 0 else nn.Identity())
        self.norm_out = _norm(cur)
        self.conv_out = nn.Conv2d(cur, config.img_channels, 3, padding=1)

    def embed(self, c_noise: torch.Tensor, class_labels: torch.Tensor | None,
              batch: int) -> torch.Tensor:
        """Noise and class embedding, shape (batch, emb_dim)."""
        c_noise = c_noise.reshape(-1).expand(batch) if c_noise.numel() == 1 else c_noise
        emb = self.map_noise(fourier_embedding(c_noise, 32))
        if class_labels is not None:
            emb = emb + self.map_label(class_labels.to(emb.dtype))
        return F.silu(emb)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """F(x; c_noise, class_labels) with one-hot class labels of shape (B, label_dim)."""
        emb = self.embed(c_noise, class_labels, x.shape[0])
        h = self.conv_in(x)
        skips = [h]
        for blocks in self.enc:
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for blocks, up in zip(self.dec, self.ups, strict=True):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))
