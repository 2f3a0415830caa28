"""ADM (guided-diffusion) and LDM checkpoints as Denoisers.

ADM: the published ``*_diffusion.pt`` files are the UNet's state dict; the flags of
guided-diffusion's model card (``model.*``: image_size, num_res_blocks, channel_mult, ...)
describe the layout, and what the weights show (widths, classes, scale-shift norm, learned
variance) is read from them. Learned variance: the output has 2 x in_channels channels and the
first half is eps. Schedules: ``linear`` or ``cosine`` with ``diffusion_steps`` timesteps.

LDM: the published ``model.ckpt`` holds ``state_dict`` with the UNet under
``model.diffusion_model.``, the class embedding ``cond_stage_model.embedding.weight`` of
class-conditional models (its row is the cross-attention context, one token), the latent
``scale_factor``, the training schedule's ``alphas_cumprod`` and EMA weights
(``model_ema.``, preferred unless ``use_ema`` is false); each is used when present,
else the settings (LDM's ``linear`` schedule is linear in sqrt(beta)). The first stage is a
local diffusers ``VQModel`` or ``AutoencoderKL`` folder (``model.autoencoder``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..configuration.errors import ConfigError
from .autoencoder import load_latent_decoder
from .eps_denoiser import EpsDenoiser
from .guided_unet import GuidedUNet, GuidedUNetConfig
from .state_dicts import load_strict, read_state_dict, require, with_prefix
from .vp_schedules import DiscreteVP, betas_for

# Layout settings a user gives (guided-diffusion's flags); the rest is read from the weights.
LAYOUT_KEYS = ("image_size", "num_res_blocks", "channel_mult", "attention_resolutions",
               "num_heads", "num_head_channels", "use_new_attention_order", "resblock_updown",
               "conv_resample", "transformer_depth")


def unet_config(state: dict[str, torch.Tensor], layout: dict[str, Any], path: str | Path
                ) -> GuidedUNetConfig:
    """The UNet's config: ``layout`` from the user, widths and heads from the weights."""
    first = require(state, "input_blocks.0.0.weight", path, "guided-diffusion UNet")
    mc = int(require(state, "time_embed.0.weight", path, "guided-diffusion UNet").shape[1])
    out = require(state, "out.2.weight", path, "guided-diffusion UNet")
    emb = state.get("input_blocks.1.0.emb_layers.1.weight")
    res_out = state.get("input_blocks.1.0.in_layers.2.weight")
    context = [v.shape[1] for k, v in state.items() if k.endswith("attn2.to_k.weight")]
    return GuidedUNetConfig(
        in_channels=int(first.shape[1]), first_channels=int(first.shape[0]),
        model_channels=mc, out_channels=int(out.shape[0]),
        num_classes=int(state["label_emb.weight"].shape[0]) if "label_emb.weight" in state
        else 0,
        use_scale_shift_norm=(emb is not None and res_out is not None
                              and emb.shape[0] == 2 * res_out.shape[0]),
        context_dim=int(context[0]) if context else 0,
        image_size=int(layout["image_size"]), num_res_blocks=int(layout["num_res_blocks"]),
        channel_mult=tuple(float(m) for m in layout["channel_mult"]),
        attention_resolutions=tuple(int(r) for r in layout["attention_resolutions"]),
        num_heads=int(layout.get("num_heads", 1)),
        num_head_channels=int(layout.get("num_head_channels", -1)),
        use_new_attention_order=bool(layout.get("use_new_attention_order", False)),
        resblock_updown=bool(layout.get("resblock_updown", False)),
        conv_resample=bool(layout.get("conv_resample", True)),
        transformer_depth=int(layout.get("transformer_depth", 1)))


def build_unet(state: dict[str, torch.Tensor], layout: dict[str, Any], path: str | Path
               ) -> GuidedUNet:
    """The UNet with ``state`` loaded (strict); ConfigError naming the settings otherwise."""
    cfg = unet_config(state, layout, path)
    if cfg.out_channels not in (cfg.in_channels, 2 * cfg.in_channels):
        raise ConfigError("model.path", str(path), f"outputs {cfg.out_channels} channels for "
                          f"{cfg.in_channels} in; expected eps or [eps, variance]")
    settings = ", ".join(f"model.{k}" for k in LAYOUT_KEYS if k in layout)
    return load_strict(GuidedUNet(cfg), state, path, settings)


def load_adm(path: str | Path, layout: dict[str, Any], noise_schedule: str = "linear",
             diffusion_steps: int = 1000) -> EpsDenoiser:
    """A guided-diffusion UNet state dict (ADM) as an EDM-form denoiser."""
    unet = build_unet(read_state_dict(path), layout, path)
    cfg = unet.cfg
    schedule = DiscreteVP(betas_for(noise_schedule, int(diffusion_steps)))
    return EpsDenoiser(unet, schedule, cfg.in_channels, cfg.image_size, cfg.num_classes,
                       unet.skip_points)


def ema_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet's weights, each replaced by its EMA copy where the checkpoint holds one.

    LDM keeps EMA weights as ``model_ema.<name without dots>`` buffers (``LitEma``) and
    samples with them whenever they exist; cin256-v2 was trained without EMA.
    """
    weights = with_prefix(state, "model.diffusion_model.")
    for name in weights:
        ema = "model_ema." + f"diffusion_model.{name}".replace(".", "")
        if ema in state:
            weights[name] = state[ema]
    return weights


class LDMClassConditional(nn.Module):
    """LDM's UNet with its class embedder: context = embedding(y) as one token."""

    def __init__(self, diffusion_model: GuidedUNet, embedding: nn.Embedding | None) -> None:
        super().__init__()
        self.diffusion_model, self.embedding = diffusion_model, embedding

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                ) -> torch.Tensor:
        """eps of the UNet with the class token as cross-attention context."""
        context = None if self.embedding is None else self.embedding(y)[:, None]
        return self.diffusion_model(x, t, context=context)


def load_ldm(path: str | Path, layout: dict[str, Any], autoencoder: str | Path | None,
             latent_scale: float = 1.0, linear_start: float = 0.0015,
             linear_end: float = 0.0195, timesteps: int = 1000, guidance_scale: float = 1.0,
             num_classes: int = 1000, null_class: int | None = 1000,
             use_ema: bool = True) -> EpsDenoiser:
    """An LDM checkpoint (``state_dict`` of the LatentDiffusion module) as a denoiser.

    Images draw classes ``seed % num_classes``; ``null_class`` is the embedding row of the
    unconditional pass of classifier-free guidance (cin256-v2: 1000 of 1001 rows).
    """
    checkpoint = read_state_dict(path)
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict):
        raise ConfigError("model.path", str(path), "its state_dict is not a dict of tensors")
    unet = build_unet(ema_weights(state) if use_ema else
                      with_prefix(state, "model.diffusion_model."), layout, path)
    table = state.get("cond_stage_model.embedding.weight")
    embedding = None
    if table is not None:
        embedding = nn.Embedding(*table.shape).requires_grad_(False)
        embedding.weight.copy_(table.to(torch.float32))
    if (embedding is None) != (unet.cfg.context_dim == 0):
        raise ConfigError("model.path", str(path), "a cross-attention UNet needs the class "
                          "embedding cond_stage_model.embedding.weight (and only it)")
    net = LDMClassConditional(unet, embedding).eval()
    rows = 0 if table is None else int(table.shape[0])
    label_dim = min(int(num_classes), rows)
    if guidance_scale != 1.0 and not (null_class is not None and 0 <= null_class < rows):
        raise ConfigError("model.null_class", null_class, f"guidance needs the null class, a "
                          f"row of the {rows}-row class embedding (1000 for cin256-v2)")
    stored = state.get("scale_factor")  # LatentDiffusion keeps its latent scale as a buffer
    scale = float(stored) if isinstance(stored, torch.Tensor) else latent_scale
    decoder = load_latent_decoder(autoencoder, scale) if autoencoder else None
    # The checkpoint holds the schedule it was trained with; the settings are the fallback.
    abar = state.get("alphas_cumprod")
    schedule = (DiscreteVP(alphas_cumprod=abar) if isinstance(abar, torch.Tensor) else
                DiscreteVP(betas_for("sqrt_linear", int(timesteps), linear_start, linear_end)))
    skips = [replace(p, module_name="diffusion_model." + p.module_name) for p in unet.skip_points]
    return EpsDenoiser(net, schedule, unet.cfg.in_channels, unet.cfg.image_size, label_dim,
                       skips, guidance_scale, null_class, decoder)


