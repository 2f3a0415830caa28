"""``skipsearch train-toy``: train the bundled digits model and feature network."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ..train.settings import check_train_toy
from ..train.toy import train_toy

log = logging.getLogger(__name__)


def run_train_toy(cfg: DictConfig) -> dict[str, Path]:
    """Train with ``cfg.seed`` and report where the weights, log and grid were written."""
    outputs = check_train_toy(cfg)
    written = train_toy(cfg, outputs.assets_dir, outputs.docs_dir)
    for what, path in written.items():
        log.info("%s: %s", what, path)
    return written
