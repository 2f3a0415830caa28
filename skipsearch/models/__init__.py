"""Model adapters: each turns a checkpoint into a Denoiser with its skips discovered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from ..weights import file_sha256
from .denoiser import Denoiser, EDMPrecond
from .digits import DIGITS_WEIGHTS, load_digits_denoiser

MODEL_KINDS = ("digits",)


@dataclass
class LoadedModel:
    """A ready denoiser, its name and the SHA-256 of the file it came from."""

    denoiser: Denoiser
    name: str
    weights: Path
    sha256: str


def load_model(cfg, device: torch.device | str = "cpu") -> LoadedModel:
    """Load the model described by the ``model`` config group onto ``device``."""
    if cfg.kind not in MODEL_KINDS:
        raise ConfigError("model.kind", cfg.kind, f"choose one of {', '.join(MODEL_KINDS)}")
    path = Path(cfg.weights) if cfg.get("weights") else DIGITS_WEIGHTS
    denoiser = load_digits_denoiser(path, "model.weights")
    return LoadedModel(denoiser.to(device), str(cfg.name), path, file_sha256(path))


__all__ = ["MODEL_KINDS", "Denoiser", "EDMPrecond", "LoadedModel", "load_model"]
