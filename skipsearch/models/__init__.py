"""Model adapters: each turns a checkpoint into a Denoiser with its skips discovered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from ..weights import content_sha256
from .denoiser import Denoiser, EDMPrecond
from .digits import DIGITS_WEIGHTS, load_digits_denoiser
from .edm import load_edm_denoiser


@dataclass
class LoadedModel:
    """A ready denoiser, its name and the SHA-256 of the file (or folder) it came from."""

    denoiser: Denoiser
    name: str
    weights: Path
    sha256: str


def _digits(cfg) -> tuple[Denoiser, Path]:
    """The bundled digits UNet, or another file of its architecture."""
    path = Path(cfg.weights) if cfg.get("weights") else DIGITS_WEIGHTS
    return load_digits_denoiser(path, "model.weights"), path


def _edm(cfg) -> tuple[Denoiser, Path]:
    """An NVlabs EDM snapshot pickle (needs model.trust_pickle=true)."""
    path = Path(cfg.path)
    return load_edm_denoiser(path, bool(cfg.get("trust_pickle", False))), path


LOADERS: dict[str, Callable[..., tuple[Denoiser, Path]]] = {"digits": _digits, "edm": _edm}
MODEL_KINDS = tuple(LOADERS)


def load_model(cfg, device: torch.device | str = "cpu") -> LoadedModel:
    """Load the model described by the ``model`` config group onto ``device``."""
    if cfg.kind not in LOADERS:
        raise ConfigError("model.kind", cfg.kind, f"choose one of {', '.join(MODEL_KINDS)}")
    denoiser, path = LOADERS[cfg.kind](cfg)
    return LoadedModel(denoiser.to(device), str(cfg.name), path, content_sha256(path))


__all__ = ["MODEL_KINDS", "Denoiser", "EDMPrecond", "LoadedModel", "load_model"]
