"""A tiny random SDXL base pipeline folder, saved by diffusers' own StableDiffusionXLPipeline.

The layout is SDXL base's at reduced size: a first level without attention, then
cross-attention levels with several transformer layers, the ``text_time`` added embedding, two
CLIP text encoders of different widths (the context is both side by side) and the second's
projection as the pooled embedding, a VAE with SDXL's scaling factor.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.support.sd_pipeline import MAX_LENGTH, TINY_VAE, tiny_tokenizer_files

HIDDEN, HIDDEN_2, PROJECTION = 16, 32, 24  # text_encoder, text_encoder_2 and its projection
TIME_EMBED = 8
TINY_SDXL_UNET = {
    "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (32, 64), "norm_num_groups": 8, "attention_head_dim": (4, 8),
    "transformer_layers_per_block": (1, 2), "use_linear_projection": True,
    "cross_attention_dim": HIDDEN + HIDDEN_2,
    "addition_embed_type": "text_time", "addition_time_embed_dim": TIME_EMBED,
    "projection_class_embeddings_input_dim": 6 * TIME_EMBED + PROJECTION,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
}
TINY_SDXL_VAE = {**TINY_VAE, "scaling_factor": 0.13025, "force_upcast": True}
# SDXL base's scheduler_config.json (EulerDiscreteScheduler)
SDXL_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "prediction_type": "epsilon",
                  "timestep_spacing": "leading", "steps_offset": 1}
IMAGE_SIZE = 16  # pixels: the UNet's 8 latents times the tiny VAE's factor 2


def _text_encoder(model_class, vocab_size: int, hidden: int, seed: int):
    from transformers import CLIPTextConfig

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=hidden,
                            intermediate_size=2 * hidden, num_attention_heads=4,
                            num_hidden_layers=3, max_position_embeddings=MAX_LENGTH,
                            projection_dim=PROJECTION, hidden_act="gelu",
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return model_class(config)


def write_tiny_sdxl_pipeline(folder: Path, seed: int = 0,
                             force_zeros_for_empty_prompt: bool = True) -> Path:
    """Save random-initialised SDXL base components at reduced size under ``folder``."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = tiny_tokenizer_files(folder.parent / f"{folder.name}-vocab")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=MAX_LENGTH)
    # SDXL's second tokenizer pads with "!" rather than the end token.
    tokenizer_2 = CLIPTokenizer(str(vocab), str(merges), model_max_length=MAX_LENGTH,
                                pad_token="!")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**TINY_SDXL_UNET)
    vae = AutoencoderKL(**TINY_SDXL_VAE)
    pipe = StableDiffusionXLPipeline(
        vae=vae, unet=unet, scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        text_encoder=_text_encoder(CLIPTextModel, len(tokenizer), HIDDEN, seed + 1),
        text_encoder_2=_text_encoder(CLIPTextModelWithProjection, len(tokenizer), HIDDEN_2,
                                     seed + 2),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2,
        force_zeros_for_empty_prompt=force_zeros_for_empty_prompt, add_watermarker=False)
    pipe.save_pretrained(folder)
    return folder
