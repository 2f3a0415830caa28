"""A tiny random CLIPModel folder with its processor (character tokenizer), as CLIP score reads."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.support.sd_pipeline import tiny_tokenizer_files

SIZE, LENGTH = 32, 16
TINY_TEXT = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
             "num_hidden_layers": 1, "max_position_embeddings": LENGTH,
             "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
TINY_VISION = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
               "num_hidden_layers": 1, "image_size": SIZE, "patch_size": 8}


def write_tiny_clip(root: Path) -> Path:
    """Save a random CLIPModel and its processor under ``root/tiny-clip``; return the folder."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    vocab, merges = tiny_tokenizer_files(root / "vocab")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=LENGTH)
    images = CLIPImageProcessor(size={"shortest_edge": SIZE},
                                crop_size={"height": SIZE, "width": SIZE})
    folder = root / "tiny-clip"
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    config = CLIPConfig(text_config={**TINY_TEXT, "vocab_size": len(tokenizer)},
                        vision_config=TINY_VISION, projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    return folder
