"""CLIP score (Hessel et al., 2021) of generated images against their prompts, on torchmetrics.

The score of one image is 100 * max(cos(E_image, E_prompt), 0) with CLIP's projected image and
text embeddings; the metric is its mean over images. The embeddings and the cosine are
torchmetrics' (``torchmetrics.multimodal.CLIPScore``); its model and processor are a CLIPModel
and a CLIPProcessor read from a local folder (``local_files_only``): nothing is downloaded.

With transformers >= 5, ``CLIPModel.get_image_features`` and ``get_text_features`` return an
output object rather than the embedding tensor, which torchmetrics 1.9 cannot use
(Lightning-AI/torchmetrics#3407); the model reaches torchmetrics through ``CLIPEmbeddings``,
which hands it the projected embeddings (``pooler_output``) either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..configuration.errors import ConfigError
from ..configuration.weights import content_sha256
from ..execution.images import quantize
from ..execution.precision import autocast
from .statistic import Accumulator, Statistic

CLIP_NAME = "clip"
CLIP_EXAMPLE = "openai/clip-vit-large-patch14"
GIVE_FOLDER = (f"give a local CLIP model folder, e.g. {CLIP_EXAMPLE} saved with "
               "CLIPModel.save_pretrained and CLIPProcessor.save_pretrained (nothing is "
               "downloaded)")
#: the tokenizer files of a CLIP folder: one of these sets must be present
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
#: the image processor's settings are in one of these files
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def _embedding(output: Any) -> torch.Tensor:
    """The projected embedding: the tensor itself, or ``pooler_output`` (transformers >= 5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class CLIPEmbeddings(nn.Module):
    """A CLIPModel whose feature methods return the projected embeddings, as torchmetrics needs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def config(self) -> Any:
        """The CLIPModel's config (torchmetrics reads the text length limit from it)."""
        return self.model.config

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected image embeddings, (B, projection_dim)."""
        return _embedding(self.model.get_image_features(pixel_values))

    def get_text_features(self, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Projected text embeddings, (B, projection_dim)."""
        return _embedding(self.model.get_text_features(input_ids, attention_mask))


class CLIPImageText(nn.Module):
    """Images in [-1, 1] (or uint8) and their prompts to float64 per-image CLIP scores."""

    needs_prompts = True
    img_channels = 3
    num_features = 1
    precision = "fp32"  # autocast dtype of the network (precision.features)

    def __init__(self, metric: nn.Module, name: str, sha256: str) -> None:
        super().__init__()
        self.metric = metric.eval().requires_grad_(False)
        self.name, self.sha256 = name, sha256

    @torch.no_grad()
    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """(B, 1) scores 100 * max(cos, 0) of images, quantized to 8 bits as saved images are."""
        from torchmetrics.functional.multimodal.clip_score import _clip_score_update

        if images.dtype != torch.uint8:
            images = quantize(images)
        if images.shape[0] == 0:
            return torch.zeros(0, 1, dtype=torch.float64, device=images.device)
        with autocast(images.device, self.precision):
            score, _ = _clip_score_update(list(images), list(prompts), self.metric.model,
                                          self.metric.processor)
        return score.double().clamp(min=0).reshape(-1, 1)


def _first_line(err: Exception) -> str:
    """An exception's message on one line."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_clip_folder(path: Path, key: str) -> None:
    """Refuse a missing folder or one without a CLIPModel config and processor files."""
    if not path.is_dir():
        raise ConfigError(key, str(path), f"no such folder; {GIVE_FOLDER}")
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if model_type != "clip":
        raise ConfigError(key, str(path), f"not a CLIP model folder (no config.json of a "
                          f"CLIPModel); {GIVE_FOLDER}")
    has_tokenizer = any(all((path / f).is_file() for f in files) for files in TOKENIZER_FILES)
    if not has_tokenizer or not any((path / f).is_file() for f in PROCESSOR_FILES):
        raise ConfigError(key, str(path), "no CLIP processor files (tokenizer.json or "
                          "vocab.json + merges.txt, and preprocessor_config.json); "
                          + GIVE_FOLDER)


def clip_image_text(path: Path | None, key: str = "metric.clip_weights") -> CLIPImageText:
    """CLIP score's network: the CLIPModel and CLIPProcessor in the local folder ``path``."""
    if path is None:
        raise ConfigError(key, None, f"CLIP score needs its model; {GIVE_FOLDER}")
    try:
        from torchmetrics.multimodal.clip_score import CLIPScore as TMCLIPScore
        from transformers import CLIPModel, CLIPProcessor
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError(key, str(path), "CLIP score needs transformers: "
                          "pip install transformers") from None
    path = Path(path)
    check_clip_folder(path, key)
    try:
        model = CLIPModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        processor = CLIPProcessor.from_pretrained(str(path), local_files_only=True)
    except Exception as err:  # any failure to load means: not a usable CLIP folder
        raise ConfigError(key, str(path), f"not a loadable CLIP model folder "
                          f"({_first_line(err)}); {GIVE_FOLDER}") from None
    embeddings = CLIPEmbeddings(model.eval().requires_grad_(False))
    metric = TMCLIPScore(model_name_or_path=lambda: (embeddings, processor))
    return CLIPImageText(metric, f"{CLIP_NAME}-{path.resolve().name}", content_sha256(path))


class CLIPScoreBlocks(Accumulator):
    """Per-block sums of per-image CLIP scores (float64)."""

    def __init__(self, blocks: int, total: int) -> None:
        super().__init__(blocks, total)
        self.sums = torch.zeros(blocks, dtype=torch.float64)

    def add_block(self, block: int, features: torch.Tensor, context: Sequence | None) -> None:
        """Add the scores (B, 1) of images that all fall in ``block``."""
        self.sums[block] += float(features.detach().to(torch.float64).sum())

    def value(self, leave_out: int | None = None) -> float:
        """Mean CLIP score of the images added, without block ``leave_out`` if given."""
        keep = self.kept(leave_out)
        count = int(self.count[keep].sum())
        if count == 0:
            raise ValueError("no CLIP scores were added")
        return float(self.sums[keep].sum()) / count


class CLIPScore(Statistic):
    """CLIP score: the mean over generated images of 100 * max(cos(image, prompt), 0)."""

    needs = "none"
    higher_is_better = True

    def accumulator(self, blocks: int = 1, total: int = 0) -> Accumulator:
        """A fresh accumulator of per-image scores for ``total`` images in ``blocks`` blocks."""
        return CLIPScoreBlocks(blocks, total)
