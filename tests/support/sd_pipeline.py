"""A tiny random Stable Diffusion pipeline folder (UNet, VAE, text encoder, tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_SD_UNET = {
    "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
    "block_out_channels": (32, 64), "norm_num_groups": 8, "attention_head_dim": 8,
    "cross_attention_dim": 32,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
}
TINY_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (8, 16),
    "down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2,
    "norm_num_groups": 4, "layers_per_block": 1, "sample_size": 16,
}
MAX_LENGTH = 16


def tiny_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A character-level BPE vocabulary (no merges) in CLIP's file format."""
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    tokens += list(chars) + [c + "</w>" for c in chars]
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    merges.write_text("#version: 0.2\n")
    return vocab, merges


def write_tiny_sd_pipeline(folder: Path, seed: int = 0) -> Path:
    """Save random-initialised SD components at reduced size under ``folder``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    UNet2DConditionModel(**TINY_SD_UNET).save_pretrained(folder / "unet")
    AutoencoderKL(**TINY_VAE).save_pretrained(folder / "vae")
    vocab, merges = tiny_tokenizer_files(folder / "vocab")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=MAX_LENGTH)
    tokenizer.save_pretrained(folder / "tokenizer")
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                            num_attention_heads=4, num_hidden_layers=2,
                            max_position_embeddings=MAX_LENGTH, projection_dim=32,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    CLIPTextModel(config).save_pretrained(folder / "text_encoder")
    return folder
