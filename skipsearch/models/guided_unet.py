"""The UNet of guided-diffusion (ADM, Dhariwal and Nichol 2021) and latent diffusion (LDM).

Written for this project from the published architecture; its module tree (``time_embed``,
``label_emb``, ``input_blocks``, ``middle_block``, ``output_blocks``, ``out``) and parameter
names follow the published state dicts, so they load with ``load_state_dict(strict=True)``.
LDM's variant replaces attention by a cross-attention ``SpatialTransformer`` fed a context.

Every input block's output is kept; each output block takes ``cat([h, skip])`` of the next
kept output (last in, first out), so every output block is one skip point; its input channels
are the running ``h`` channels plus the skip's (the trailing ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..tuning.skips import SkipPoint
from .embedding import timestep_embedding


@dataclass(frozen=True)
class GuidedUNetConfig:
    """Hyperparameters of the network, named as guided-diffusion's flags."""

    image_size: int = 64
    in_channels: int = 3
    model_channels: int = 192
    out_channels: int = 6            # twice in_channels when the variance is learned
    num_res_blocks: int = 3
    attention_resolutions: tuple[int, ...] = (32, 16, 8)  # image sizes with attention
    channel_mult: tuple[float, ...] = (1, 2, 3, 4)
    num_classes: int = 0             # 0: unconditional
    num_heads: int = 1
    num_head_channels: int = -1      # > 0: heads of this width instead of num_heads
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    use_new_attention_order: bool = False
    conv_resample: bool = True
    first_channels: int | None = None  # input conv width; None: channel_mult[0] * model_channels
    context_dim: int = 0             # > 0: LDM SpatialTransformer with this context width
    transformer_depth: int = 1

    def attention_ds(self) -> set[int]:
        """Downsampling rates with attention (guided-diffusion's ``image_size // res``)."""
        return {self.image_size // int(r) for r in self.attention_resolutions}


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups computed in float32."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__(32, channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize in float32, return in x's dtype."""
        return super().forward(x.float()).type(x.dtype)


class EmbedSequential(nn.Sequential):
    """Layers in order; residual blocks get the embedding, transformers the context."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor,  # type: ignore[override]
                context: torch.Tensor | None = None) -> torch.Tensor:
        """Apply each layer with what it takes."""
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class Upsample(nn.Module):
    """Nearest 2x upsampling, then a 3x3 conv if ``use_conv``."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample by two."""
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """A stride-2 3x3 conv (``use_conv``) or 2x2 average pooling, kept under the name ``op``."""

    def __init__(self, channels: int, use_conv: bool) -> None:
        super().__init__()
        self.op = (nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv
                   else nn.AvgPool2d(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample by two."""
        return self.op(x)


class ResBlock(nn.Module):
    """ADM's residual block: norm-SiLU-conv, embedding (add or scale-shift), norm-SiLU-conv."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None,
                 use_scale_shift_norm: bool = False, up: bool = False,
                 down: bool = False) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """skip_connection(x) + out_layers(in_layers(x) with the embedding)."""
        if self.updown:
            h = self.in_layers[:-1](x)
            h, x = self.h_upd(h), self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


def qkv_attention(qkv: torch.Tensor, heads: int, new_order: bool) -> torch.Tensor:
    """Softmax attention of a (B, 3 H C, T) qkv; heads split before (legacy) or after q, k, v."""
    b, width, length = qkv.shape
    ch = width // (3 * heads)
    if new_order:
        q, k, v = (t.reshape(b * heads, ch, length) for t in qkv.chunk(3, dim=1))
    else:
        q, k, v = qkv.reshape(b * heads, 3 * ch, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(b, -1, length)


class AttentionBlock(nn.Module):
    """ADM's self-attention over all positions: norm, 1x1 qkv, attention, 1x1 projection."""

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1,
                 new_order: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.new_order = new_order
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + proj_out(attention(qkv(norm(x))))."""
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = qkv_attention(self.qkv(self.norm(x)), self.num_heads, self.new_order)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class CrossAttention(nn.Module):
    """LDM's multi-head attention of queries on a context (itself when none)."""

    def __init__(self, query_dim: int, heads: int, dim_head: int,
                 context_dim: int | None = None) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head**-0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) v per head, projected back."""
        context = x if context is None else context
        b, n, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2)

        q, k, v = heads(self.to_q(x)), heads(self.to_k(context)), heads(self.to_v(context))
        attn = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)
        return self.to_out((attn @ v).transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    """x * gelu(gate) with [x, gate] = proj(input)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The gated projection."""
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU up to 4x the width, then a linear layer back (``net.0``, ``net.2``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward branch."""
        return self.net(x)


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention on the context, feed-forward; pre-norm residuals."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, dim_head, context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The three residual branches in order."""
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """LDM's transformer on the positions of a feature map, conditioned by cross-attention."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int,
                 context_dim: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth))
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """x + proj_out(blocks(proj_in(norm(x)) as tokens))."""
        b, _, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        return x + self.proj_out(tokens.transpose(1, 2).reshape(b, -1, h, w))


class GuidedUNet(nn.Module):
    """ADM / LDM UNet: F(x, t, y or context) with its skip points recorded at construction."""

    def __init__(self, cfg: GuidedUNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc, emb_dim = cfg.model_channels, 4 * cfg.model_channels
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(),
                                        nn.Linear(emb_dim, emb_dim))
        if cfg.num_classes:
            self.label_emb = nn.Embedding(cfg.num_classes, emb_dim)
        ch = cfg.first_channels or int(cfg.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(cfg.in_channels, ch, 3,
                                                                     padding=1))])
        kept, ds = [ch], 1  # channels of every kept input-block output
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [self._res(ch, int(mult * mc))]
                ch = int(mult * mc)
                layers += self._attention(ch, ds)
                self.input_blocks.append(EmbedSequential(*layers))
                kept.append(ch)
            if level != len(cfg.channel_mult) - 1:
                down = (self._res(ch, ch, down=True) if cfg.resblock_updown
                        else Downsample(ch, cfg.conv_resample))
                self.input_blocks.append(EmbedSequential(down))
                kept.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(self._res(ch, ch), *self._attention(ch, None),
                                            self._res(ch, ch))
        self.output_blocks = nn.ModuleList()
        self.skip_points: list[SkipPoint] = []
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                skip = kept.pop()
                self.skip_points.append(SkipPoint(
                    len(self.skip_points), level, cfg.image_size // ds, skip, ch + skip,
                    f"output_blocks.{len(self.output_blocks)}"))
                layers = [self._res(ch + skip, int(mc * mult))]
                ch = int(mc * mult)
                layers += self._attention(ch, ds, upsample=True)
                if level and i == cfg.num_res_blocks:
                    layers.append(self._res(ch, ch, up=True) if cfg.resblock_updown
                                  else Upsample(ch, cfg.conv_resample))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(),
                                 nn.Conv2d(cfg.first_channels or int(cfg.channel_mult[0] * mc),
                                           cfg.out_channels, 3, padding=1))

    def _res(self, ch: int, out: int, up: bool = False, down: bool = False) -> ResBlock:
        """A residual block with this network's embedding width and conditioning mode."""
        return ResBlock(ch, 4 * self.cfg.model_channels, out, self.cfg.use_scale_shift_norm,
                        up=up, down=down)

    def _attention(self, ch: int, ds: int | None, upsample: bool = False) -> list[nn.Module]:
        """The attention layer at downsampling rate ``ds`` (None: the middle block), if any."""
        cfg = self.cfg
        if ds is not None and ds not in cfg.attention_ds():
            return []
        if cfg.context_dim:
            # LDM: heads of num_head_channels, else num_heads heads of ch // num_heads.
            heads = ch // cfg.num_head_channels if cfg.num_head_channels > 0 else cfg.num_heads
            return [SpatialTransformer(ch, heads, ch // heads, cfg.transformer_depth,
                                       cfg.context_dim)]
        return [AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels,
                               cfg.use_new_attention_order)]

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        """The network output (eps, or [eps, variance values] when learned) at ``timesteps``."""
        emb = self.time_embed(timestep_embedding(timesteps, self.cfg.model_channels))
        if self.cfg.num_classes:
            emb = emb + self.label_emb(y)
        kept = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context)
            kept.append(h)
        h = self.middle_block(h, emb, context)
        for block in self.output_blocks:
            h = block(torch.cat([h, kept.pop()], dim=1), emb, context)
        return self.out(h)
