"""The keys of ``train-toy``, checked up front and without torch (one line each, exit code 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import check
from ..configuration.keys import get, get_bool, get_float, get_int, get_list, get_path, is_number
from ..configuration.paths import ASSETS_DIR
from ..configuration.preflight import check_writable

# assets_dir=package: write the weights into the package's own assets folder (the bundled ones).
PACKAGE = "package"
# torch.manual_seed and torch.Generator take seeds below 2**64.
SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class ToyOutputs:
    """Where ``train-toy`` writes: the weights and the log and sample grid."""

    assets_dir: Path
    docs_dir: Path


def check_train_toy(cfg: DictConfig) -> ToyOutputs:
    """Every key ``train-toy`` reads, then the folders it writes; the first problem raises."""
    get_int(cfg, "seed", 0, SEED_MAX)
    check_diffusion(cfg)
    check_classifier(cfg)
    check_autoencoder(cfg)
    get_int(cfg, "grid.steps", 1)
    get_int(cfg, "grid.n", 1)
    return toy_outputs(cfg)


def check_diffusion(cfg: DictConfig) -> None:
    """The ``diffusion`` section: the network's shape, the optimizer, EDM's noise distribution."""
    get_bool(cfg, "diffusion.enabled")
    for key in ("steps", "batch_size", "model_channels", "blocks_per_level", "log_every"):
        get_int(cfg, f"diffusion.{key}", 1)
    get_float(cfg, "diffusion.lr", 0.0)
    get_fraction(cfg, "diffusion.ema_decay", zero_allowed=True)
    mult = get_list(cfg, "diffusion.channel_mult")
    check(isinstance(mult, list) and len(mult) > 0 and all(
        isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in mult),
        "diffusion.channel_mult", mult,
        "must be a non-empty list of positive integers, e.g. [1,2,4] (one per level)")
    get_float(cfg, "diffusion.sigma_data", 0.0)
    get_float(cfg, "diffusion.P_std", 0.0)
    value = get(cfg, "diffusion.P_mean")
    check(is_number(value) and math.isfinite(value), "diffusion.P_mean", value,
          "must be a finite number (the mean of ln sigma; EDM uses -1.2)")


def check_classifier(cfg: DictConfig) -> None:
    """The ``classifier`` section: epochs, batches, the held-out share, the augmentation."""
    get_bool(cfg, "classifier.enabled")
    get_int(cfg, "classifier.epochs", 1)
    get_int(cfg, "classifier.batch_size", 1)
    get_float(cfg, "classifier.lr", 0.0)
    get_fraction(cfg, "classifier.test_fraction", zero_allowed=False)
    get_int(cfg, "classifier.max_shift", 0)


def check_autoencoder(cfg: DictConfig) -> None:
    """The ``autoencoder`` section: epochs, batches, the held-out share, the network's size."""
    get_bool(cfg, "autoencoder.enabled")
    for key in ("epochs", "batch_size", "width", "feature_dim"):
        get_int(cfg, f"autoencoder.{key}", 1)
    get_float(cfg, "autoencoder.lr", 0.0)
    get_fraction(cfg, "autoencoder.test_fraction", zero_allowed=False)


def get_fraction(cfg: DictConfig, key: str, zero_allowed: bool) -> float:
    """A number at ``key`` in [0, 1) (``zero_allowed``) or in (0, 1)."""
    value = get(cfg, key)
    low_ok = is_number(value) and (value >= 0 if zero_allowed else value > 0)
    check(low_ok and value < 1, key, value,
          f"must be a number in {'[' if zero_allowed else '('}0, 1)")
    return float(value)


def toy_outputs(cfg: DictConfig) -> ToyOutputs:
    """The folders of the weights (``assets_dir=package``: the bundled ones) and of the log."""
    get_path(cfg, "out_dir")
    assets = OmegaConf.select(cfg, "assets_dir")
    check(assets is not None, "assets_dir", assets,
          f"give a folder (by default ${{out_dir}}/train-toy/assets), or assets_dir={PACKAGE} "
          "to overwrite the bundled weights in the package")
    assets_dir = ASSETS_DIR if assets == PACKAGE else Path(get_path(cfg, "assets_dir"))
    docs_dir = Path(get_path(cfg, "docs_dir"))
    check_writable("assets_dir", assets_dir)
    check_writable("docs_dir", docs_dir)
    return ToyOutputs(assets_dir, docs_dir)
