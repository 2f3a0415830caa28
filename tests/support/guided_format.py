"""Writers of tiny checkpoints in the published formats of ADM, LDM and U-ViT (for tests).

ADM's ``*_diffusion.pt`` and U-ViT's ``*.pth`` are ``torch.save(state_dict)`` of the network;
LDM's ``model.ckpt`` holds ``{"state_dict": ...}`` of the LatentDiffusion module, of which
these hold the UNet (``model.diffusion_model.``), the class embedding
(``cond_stage_model.embedding.weight``) and the buffers ``betas``, ``alphas_cumprod`` and
``scale_factor``. First stages are diffusers folders written with ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from skipsearch.models.guided_unet import GuidedUNet, GuidedUNetConfig
from skipsearch.models.uvit import UViT, UViTConfig
from skipsearch.models.vp_schedules import sqrt_linear_betas

# 1-channel 16x16 images, so the bundled digits feature network can score them.
TINY_ADM = GuidedUNetConfig(image_size=16, in_channels=1, model_channels=32, out_channels=2,
                            num_res_blocks=1, attention_resolutions=(8,), channel_mult=(1, 2),
                            num_classes=10, num_head_channels=16, use_scale_shift_norm=True,
                            resblock_updown=True, use_new_attention_order=True)
ADM_LAYOUT = ["model.image_size=16", "model.num_res_blocks=1", "model.channel_mult=[1,2]",
              "model.attention_resolutions=[8]", "model.num_head_channels=16"]
# LDM on 2-channel 8x8 latents of a VQ first stage that decodes to 1x16x16.
TINY_LDM = GuidedUNetConfig(image_size=8, in_channels=2, model_channels=32, out_channels=2,
                            num_res_blocks=1, attention_resolutions=(4,), channel_mult=(1, 2),
                            num_heads=1, use_scale_shift_norm=False, resblock_updown=False,
                            context_dim=24)
LDM_LAYOUT = ["model.image_size=8", "model.num_res_blocks=1", "model.channel_mult=[1,2]",
              "model.attention_resolutions=[4]", "model.num_classes=10", "model.null_class=10"]
TINY_UVIT = UViTConfig(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=5,
                       num_heads=4, mlp_hidden=128, num_classes=10)
TINY_LATENT_UVIT = UViTConfig(img_size=8, patch_size=2, in_chans=2, embed_dim=32, depth=7,
                              num_heads=4, mlp_hidden=128, num_classes=11, conv=False)
TINY_AUTOENCODER = {"in_channels": 1, "out_channels": 1, "block_out_channels": (32, 32),
                    "down_block_types": ("DownEncoderBlock2D",) * 2,
                    "up_block_types": ("UpDecoderBlock2D",) * 2, "layers_per_block": 1,
                    "latent_channels": 2, "norm_num_groups": 32, "sample_size": 16}


def randomized(net: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Every parameter drawn from N(0, scale^2) (zero-initialised layers would hide skips)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
        for m in net.modules():
            if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                m.weight.fill_(1.0)
    return net.eval()


def write_adm(path: Path, cfg: GuidedUNetConfig = TINY_ADM, seed: int = 0) -> GuidedUNet:
    """An ADM-format .pt: the UNet's state dict."""
    net = randomized(GuidedUNet(cfg), seed)
    torch.save(net.state_dict(), path)
    return net


def write_ldm(path: Path, cfg: GuidedUNetConfig = TINY_LDM, classes: int = 11,
              seed: int = 0) -> tuple[GuidedUNet, torch.Tensor]:
    """An LDM-format .ckpt: the UNet, the class embedding and the schedule buffers."""
    unet = randomized(GuidedUNet(cfg), seed)
    table = torch.randn(classes, cfg.context_dim, generator=torch.Generator().manual_seed(1))
    betas = sqrt_linear_betas(0.0015, 0.0195, 1000)
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state["cond_stage_model.embedding.weight"] = table
    state["betas"] = betas.float()
    state["alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    state["scale_factor"] = torch.tensor(1.0)
    torch.save({"state_dict": state}, path)
    return unet, table


def write_uvit(path: Path, cfg: UViTConfig = TINY_UVIT, seed: int = 0) -> UViT:
    """A U-ViT-format .pth: the network's state dict."""
    net = randomized(UViT(cfg), seed, scale=0.1)
    torch.save(net.state_dict(), path)
    return net


def write_autoencoder(folder: Path, kind: str = "VQModel", seed: int = 0,
                      channels: int = 1) -> torch.nn.Module:
    """A tiny diffusers VQModel or AutoencoderKL folder (16x16 images, 2x8x8 latents)."""
    import diffusers

    torch.manual_seed(seed)
    extra = {"num_vq_embeddings": 16, "vq_embed_dim": 2} if kind == "VQModel" else {}
    config = {**TINY_AUTOENCODER, "in_channels": channels, "out_channels": channels}
    model = getattr(diffusers, kind)(**config, **extra).eval()
    model.save_pretrained(folder)
    return model
