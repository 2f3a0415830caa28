"""Adapter for the bundled digits model: safetensors weights to an EDM-preconditioned Denoiser."""

from __future__ import annotations

import json
from pathlib import Path

from ..paths import ASSETS_DIR
from ..weights import read_weights
from .denoiser import EDMPrecond
from .digits_unet import DigitsUNet, DigitsUNetConfig

DIGITS_WEIGHTS = ASSETS_DIR / "digits_edm.safetensors"


def build_digits_denoiser(config: DigitsUNetConfig, sigma_data: float = 0.5) -> EDMPrecond:
    """A randomly initialised digits denoiser of the given architecture."""
    return EDMPrecond(DigitsUNet(config), sigma_data=sigma_data)


def load_digits_denoiser(path: Path = DIGITS_WEIGHTS, key: str = "model.weights") -> EDMPrecond:
    """The digits denoiser stored at ``path``."""
    state, meta = read_weights(path, key)
    raw = json.loads(meta["config"])
    raw["channel_mult"] = tuple(raw["channel_mult"])
    denoiser = build_digits_denoiser(DigitsUNetConfig(**raw), float(meta.get("sigma_data", 0.5)))
    denoiser.net.load_state_dict(state)
    return denoiser.eval().requires_grad_(False)
