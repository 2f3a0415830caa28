"""DINOv2 ViT-L/14 features for FD-DINOv2, computed as EDM2's detector does, from a local file.

EDM2 (``calculate_metrics.py``, resize mode ``torch``) resizes uint8 images to 224x224 with
antialiased bicubic interpolation in float32, scales them to [0, 1], normalises them with the
ImageNet mean and std and takes the final-norm CLS token of the torch.hub ``dinov2_vitl14``.
The network here is timm's ``VisionTransformer`` holding Meta's official state dict; its
position table (trained at 518 pixels) is resampled once, at load time, with the official
``interpolate_pos_encoding`` formula, so the forward at 224 equals the official model's.
Nothing is downloaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..configuration.errors import ConfigError
from ..configuration.weights import file_sha256
from ..execution.images import quantize
from ..execution.precision import autocast

DINOV2_NAME = "dinov2-vitl14"
DINOV2_FILE = "dinov2_vitl14_pretrain.pth"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"

IMAGE_SIZE = 224  # EDM2 resizes every image to this before the network
HEAD_DIM = 64  # every official DINOv2 ViT has 64-d attention heads
POS_OFFSET = 0.1  # the official interpolate_offset: scale factors of (grid + 0.1) / side
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REQUIRED_KEYS = ("cls_token", "pos_embed", "patch_embed.proj.weight",
                 "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight", "norm.weight")


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """EDM2's ``resize_mode='torch'``: uint8 (B, 3, H, W) to float32 (B, 3, 224, 224)."""
    x = F.interpolate(images.to(torch.float32), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic",
                      antialias=True)
    x = x / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return (x - mean) / std


def resample_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """The official ``interpolate_pos_encoding`` of a (1, 1 + side², D) table for a grid² input."""
    side = math.isqrt(pos_embed.shape[1] - 1)
    if side == grid:
        return pos_embed
    table = pos_embed.float()
    patches = table[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = (grid + POS_OFFSET) / side
    patches = F.interpolate(patches, scale_factor=(scale, scale), mode="bicubic",
                            antialias=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    return torch.cat((table[:, :1], patches), dim=1).to(pos_embed.dtype)


class DINOv2Features(nn.Module):
    """Images in [-1, 1] (or uint8) to float64 DINOv2 CLS features, for torchmetrics."""

    img_channels = 3
    precision = "fp32"  # autocast dtype of the network (precision.features)

    def __init__(self, network: nn.Module, sha256: str) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.name, self.sha256 = DINOV2_NAME, sha256
        self.num_features = int(network.num_features)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """CLS features of RGB (or grey) images, quantized to 8 bits as saved images would be."""
        if images.dtype != torch.uint8:
            images = quantize(images)
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        x = preprocess(images)
        with autocast(images.device, self.precision):
            return self.network(x).double()


def load_dinov2_state(path: Path, key: str) -> dict[str, torch.Tensor]:
    """The tensors of an official DINOv2 ViT file; a missing or unsafe file is a ConfigError."""
    where = f"expected {DINOV2_FILE}, published at {DINOV2_URL}; download it and give its path"
    if not path.is_file():
        raise ConfigError(key, str(path), f"no such file; FD-DINOv2 {where}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure means: not a plain state dict
        text = " ".join(str(err).split())[:200]
        raise ConfigError(key, str(path), f"not a plain DINOv2 state dict ({text}); "
                          f"{where}") from None
    missing = [name for name in REQUIRED_KEYS
               if not isinstance(state, dict) or not isinstance(state.get(name), torch.Tensor)]
    if missing:
        raise ConfigError(key, str(path), f"not a DINOv2 ViT state dict (no {missing[0]}); "
                          f"{where}")
    return state


def dinov2_features(path: Path, key: str = "metric.dinov2_weights") -> DINOv2Features:
    """EDM2's FD-DINOv2 network: timm's ViT with the official DINOv2 weights at ``path``."""
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError(key, str(path), "FD-DINOv2 needs timm: pip install timm") from None
    path = Path(path)
    state = load_dinov2_state(path, key)
    dim, channels, patch, _ = state["patch_embed.proj.weight"].shape
    tokens = state["pos_embed"].shape[1] - 1
    side = math.isqrt(tokens)
    if (channels != 3 or dim % HEAD_DIM or IMAGE_SIZE % patch or side * side != tokens
            or state["pos_embed"].shape != (1, tokens + 1, dim)):
        raise ConfigError(key, str(path), "not an official DINOv2 ViT (an RGB patch embedding, "
                          f"a square position table, {HEAD_DIM}-d heads); expected "
                          f"{DINOV2_FILE} from {DINOV2_URL}")
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in state:
        depth += 1
    hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    network = VisionTransformer(
        img_size=IMAGE_SIZE, patch_size=patch, embed_dim=dim, depth=depth,
        num_heads=dim // HEAD_DIM, mlp_ratio=hidden / dim, qkv_bias=True, init_values=1.0,
        num_classes=0, global_pool="token", weight_init="skip")
    state = {name: value for name, value in state.items() if name != "mask_token"}
    state["pos_embed"] = resample_pos_embed(state["pos_embed"], IMAGE_SIZE // patch)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        text = " ".join(str(err).split())[:200]
        raise ConfigError(key, str(path), f"not a DINOv2 ViT with layer scale and an MLP "
                          f"({text}); expected {DINOV2_FILE} from {DINOV2_URL}") from None
    return DINOv2Features(network, file_sha256(path))
