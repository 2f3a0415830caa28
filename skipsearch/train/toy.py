"""``skipsearch train-toy``: train and write the bundled digits model and feature networks."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..configuration.weights import save_weights
from ..execution.generation import generate
from ..execution.images import save_grid
from ..metrics.digits_autoencoder import autoencoder_config_dict
from ..metrics.features import config_dict
from ..samplers import edm_sigmas, heun_nfe
from .autoencoder import train_autoencoder
from .classifier import train_classifier
from .diffusion import train_diffusion

log = logging.getLogger(__name__)


def train_toy(cfg, assets_dir: Path, docs_dir: Path) -> dict[str, Path]:
    """Train the networks with ``cfg.seed``; write weights, the log and a 35-NFE sample grid."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    written: dict[str, Path] = {}
    lines = [f"seed {cfg.seed}", "== digits classifier (FID feature network) =="]
    if cfg.classifier.enabled:
        clf, acc, clf_lines = train_classifier(cfg.classifier, cfg.seed)
        lines += [*clf_lines, f"final held-out accuracy {acc:.4f}"]
        written["classifier"] = assets_dir / "digits_classifier.safetensors"
        save_weights(clf, written["classifier"], config_dict(clf.config),
                     held_out_accuracy=f"{acc:.4f}", seed=str(cfg.seed))
    lines.append("== digits autoencoder (second FID feature network) ==")
    if cfg.autoencoder.enabled:
        ae, mse, ae_lines = train_autoencoder(cfg.autoencoder, cfg.seed)
        lines += [*ae_lines, f"final held-out mse {mse:.4f}"]
        written["autoencoder"] = assets_dir / "digits_autoencoder.safetensors"
        save_weights(ae, written["autoencoder"], autoencoder_config_dict(ae.config),
                     held_out_mse=f"{mse:.6f}", seed=str(cfg.seed))
    lines.append("== digits diffusion model (EDM loss) ==")
    if cfg.diffusion.enabled:
        denoiser, diff_lines = train_diffusion(cfg.diffusion, cfg.seed)
        lines += diff_lines
        written["model"] = assets_dir / "digits_edm.safetensors"
        save_weights(denoiser.net, written["model"], denoiser.net.config.to_dict(),
                     sigma_data=str(denoiser.sigma_data), seed=str(cfg.seed))
        steps = cfg.grid.steps
        seeds = range(cfg.grid.n)
        images = generate(denoiser, seeds, edm_sigmas(steps))
        written["grid"] = save_grid(images, docs_dir / f"digits_samples_{heun_nfe(steps)}nfe.png",
                                    nrow=10)
    written["log"] = docs_dir / "train_toy.log"
    written["log"].parent.mkdir(parents=True, exist_ok=True)
    written["log"].write_text("\n".join(lines) + "\n")
    return written
