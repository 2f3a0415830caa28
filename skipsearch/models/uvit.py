"""U-ViT (Bao et al. 2023): a ViT whose long skips join token features, and its checkpoints.

Written for this project from the published architecture; module and parameter names follow
the official state dicts (``patch_embed.proj``, ``time_embed``, ``label_emb``, ``pos_embed``,
``in_blocks``, ``mid_block``, ``out_blocks``, ``norm``, ``decoder_pred``, ``final_layer``), so
they load strictly. Tokens are [label,] time, patches. Every in-block output is kept; each
out-block first maps ``skip_linear(cat([x, skip], dim=-1))`` with the skips taken last in,
first out, so each ``out_blocks.i.skip_linear`` is a skip point whose trailing D input
features are the skip. Everything but the head count is read from the weights.

Published schedules: the pixel models (ImageNet-64) were trained on the continuous VP SDE
(beta 0.1 to 20) with network time 999 t; the latent models with ``_discrete`` training
(ImageNet-256/512 U-ViT-H) on Stable Diffusion's betas (linear in sqrt(beta), 0.00085 to
0.012, 1000 steps) with timesteps numbered 1 ... 1000, latents scaled by 0.18215.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration.errors import ConfigError
from ..tuning.skips import SkipPoint
from .autoencoder import load_latent_decoder
from .embedding import timestep_embedding
from .eps_denoiser import EpsDenoiser
from .state_dicts import load_strict, read_state_dict, require
from .vp_schedules import ContinuousVP, DiscreteVP, sqrt_linear_betas

UVIT_SCHEDULES = ("continuous", "discrete")


@dataclass(frozen=True)
class UViTConfig:
    """U-ViT hyperparameters, named as in the official configs."""

    img_size: int = 64
    patch_size: int = 4
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 20
    num_heads: int = 16
    mlp_hidden: int = 4096
    qkv_bias: bool = False
    mlp_time_embed: bool = False
    num_classes: int = 0        # 0: unconditional (the official -1)
    conv: bool = True


class Attention(nn.Module):
    """Multi-head self-attention with one qkv projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) v per head, projected."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).float()
        out = F.scaled_dot_product_attention(q, k, v).to(x.dtype)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1, GELU, fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP branch."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; a decoder block first projects cat([x, skip]) to D."""

    def __init__(self, cfg: UViTConfig, skip: bool = False) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, cfg.mlp_hidden)
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """x (+ long skip) -> attention and MLP residual branches."""
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens by a strided conv."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) to (B, L, D)."""
        return self.proj(x).flatten(2).transpose(1, 2)


class UViT(nn.Module):
    """U-ViT: eps(x, t[, y]) with ``skip_points`` recorded at construction."""

    def __init__(self, cfg: UViTConfig) -> None:
        super().__init__()
        self.cfg, dim = cfg, cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, dim)
        self.time_embed = (nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(),
                                         nn.Linear(4 * dim, dim))
                           if cfg.mlp_time_embed else nn.Identity())
        if cfg.num_classes:
            self.label_emb = nn.Embedding(cfg.num_classes, dim)
        self.extras = 2 if cfg.num_classes else 1
        self.grid = cfg.img_size // cfg.patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, self.extras + self.grid**2, dim))
        half = cfg.depth // 2
        self.in_blocks = nn.ModuleList(Block(cfg) for _ in range(half))
        self.mid_block = Block(cfg)
        self.out_blocks = nn.ModuleList(Block(cfg, skip=True) for _ in range(half))
        self.norm = nn.LayerNorm(dim)
        self.decoder_pred = nn.Linear(dim, cfg.patch_size**2 * cfg.in_chans)
        self.final_layer = (nn.Conv2d(cfg.in_chans, cfg.in_chans, 3, padding=1) if cfg.conv
                            else nn.Identity())
        # out_blocks.0 takes the last in-block's output (next to mid_block): bottom first.
        self.skip_points = [SkipPoint(i, half - 1 - i, self.grid, dim, 2 * dim,
                                      f"out_blocks.{i}.skip_linear", feature_dim=-1)
                            for i in range(half)]

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, p p C) patch tokens back to (B, C, H, W)."""
        b, p, c, g = x.shape[0], self.cfg.patch_size, self.cfg.in_chans, self.grid
        x = x.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, g * p, g * p)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor,
                y: torch.Tensor | None = None) -> torch.Tensor:
        """The network's eps prediction."""
        x = self.patch_embed(x)
        time_token = self.time_embed(timestep_embedding(timesteps, self.cfg.embed_dim))
        tokens = [time_token[:, None], x]
        if y is not None:
            tokens.insert(0, self.label_emb(y)[:, None])
        x = torch.cat(tokens, dim=1) + self.pos_embed
        kept = []
        for block in self.in_blocks:
            x = block(x)
            kept.append(x)
        x = self.mid_block(x)
        for block in self.out_blocks:
            x = block(x, kept.pop())
        x = self.decoder_pred(self.norm(x))[:, self.extras:]
        return self.final_layer(self.unpatchify(x))


def uvit_config(state: dict[str, torch.Tensor], num_heads: int, path: str | Path) -> UViTConfig:
    """The config of a U-ViT state dict: all from the weights but the head count."""
    proj = require(state, "patch_embed.proj.weight", path, "U-ViT")
    pos = require(state, "pos_embed", path, "U-ViT")
    fc1 = require(state, "in_blocks.0.mlp.fc1.weight", path, "U-ViT")
    depth = 2 * len({k.split(".")[1] for k in state if k.startswith("in_blocks.")})
    classes = int(state["label_emb.weight"].shape[0]) if "label_emb.weight" in state else 0
    tokens = int(pos.shape[1]) - (2 if classes else 1)
    grid, patch = math.isqrt(tokens), int(proj.shape[2])
    if grid * grid != tokens:
        raise ConfigError("model.path", str(path), f"pos_embed has {tokens} patch tokens, "
                          "not a square grid: not a U-ViT checkpoint")
    dim = int(pos.shape[2])
    if dim % num_heads:
        raise ConfigError("model.num_heads", num_heads, f"must divide the width {dim}")
    return UViTConfig(img_size=grid * patch, patch_size=patch, in_chans=int(proj.shape[1]),
                      embed_dim=dim, depth=depth, num_heads=num_heads,
                      mlp_hidden=int(fc1.shape[0]),
                      qkv_bias="in_blocks.0.attn.qkv.bias" in state,
                      mlp_time_embed="time_embed.0.weight" in state, num_classes=classes,
                      conv="final_layer.weight" in state)


def load_uvit(path: str | Path, num_heads: int, schedule: str = "continuous",
              autoencoder: str | Path | None = None, latent_scale: float = 0.18215,
              guidance_scale: float = 1.0, num_classes: int = 1000,
              null_class: int | None = None) -> EpsDenoiser:
    """A U-ViT state dict (``nnet`` weights) as an EDM-form denoiser.

    ``schedule``: ``continuous`` (pixel models) or ``discrete`` (``*_discrete``-trained latent
    models); ``autoencoder``: the latent models' Stable Diffusion VAE folder.
    """
    state = read_state_dict(path)
    cfg = uvit_config(state, int(num_heads), path)
    net = load_strict(UViT(cfg), state, path, "model.num_heads")
    if schedule == "continuous":
        vp = ContinuousVP()
    elif schedule == "discrete":
        vp = DiscreteVP(sqrt_linear_betas(0.00085, 0.012, 1000), offset=1)
    else:
        raise ConfigError("model.schedule", schedule, f"choose one of {', '.join(UVIT_SCHEDULES)}")
    label_dim = min(int(num_classes), cfg.num_classes)
    if guidance_scale != 1.0 and not (null_class is not None
                                      and 0 <= null_class < cfg.num_classes):
        raise ConfigError("model.null_class", null_class, f"guidance needs the null class, a "
                          f"row of the {cfg.num_classes}-row label embedding (1000 for "
                          "ImageNet-256/512)")
    decoder = load_latent_decoder(autoencoder, latent_scale) if autoencoder else None
    return EpsDenoiser(net, vp, cfg.in_chans, cfg.img_size, label_dim, net.skip_points,
                       guidance_scale, null_class, decoder)
