"""Adapter for the bundled digits model: safetensors weights to an EDM-preconditioned Denoiser."""

from __future__ import annotations

from pathlib import Path

from ..configuration.paths import ASSETS_DIR
from ..configuration.weights import DENOISER_FILE, check_network_file, load_checked
from .denoiser import EDMPrecond
from .digits_unet import DigitsUNet, DigitsUNetConfig

DIGITS_WEIGHTS = ASSETS_DIR / "digits_edm.safetensors"


def build_digits_denoiser(config: DigitsUNetConfig, sigma_data: float = 0.5) -> EDMPrecond:
    """A randomly initialised digits denoiser of the given architecture."""
    return EDMPrecond(DigitsUNet(config), sigma_data=sigma_data)


def load_digits_denoiser(path: Path = DIGITS_WEIGHTS, key: str = "model.weights") -> EDMPrecond:
    """The digits denoiser stored at ``path``; a file that does not fit is a ConfigError."""
    raw, header = check_network_file(path, key, DENOISER_FILE)
    config = DigitsUNetConfig(**{**raw, "channel_mult": tuple(raw["channel_mult"])})
    net = load_checked(lambda: DigitsUNet(config), path, key, header)
    denoiser = EDMPrecond(net, sigma_data=float(header.metadata.get("sigma_data", 0.5)))
    return denoiser.eval().requires_grad_(False)
