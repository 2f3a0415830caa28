"""Experiment tracking: one W&B run per trial, grouped by study; offline without an API key.

A tracking failure never fails a trial: the study storage is the record, W&B is a view of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import torch

from .images import grid_array

log = logging.getLogger(__name__)
LOGGER_KINDS = ("wandb", "none")
WANDB_MODES = ("auto", "online", "offline")


class Tracker(Protocol):
    """What the search needs from a tracker."""

    def log_trial(self, number: int, config: Mapping, metrics: Mapping,
                  preview: torch.Tensor | None) -> None:
        """Record one finished trial."""


class NoTracker:
    """``logger=none``: records nothing."""

    def log_trial(self, number: int, config: Mapping, metrics: Mapping,
                  preview: torch.Tensor | None) -> None:
        """Do nothing."""


def wandb_mode(requested: str) -> str:
    """``auto`` means online when WANDB_API_KEY is set, offline otherwise."""
    if requested != "auto":
        return requested
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbTracker:
    """One W&B run per trial (job_type=trial, group=study) with config, FID, NFE and a grid."""

    def __init__(self, project: str, entity: str | None, group: str, mode: str,
                 directory: Path, run_config: Mapping) -> None:
        self.project, self.entity, self.group = project, entity, group
        self.mode = wandb_mode(mode)
        self.directory = directory
        self.run_config = dict(run_config)
        directory.mkdir(parents=True, exist_ok=True)

    def log_trial(self, number: int, config: Mapping, metrics: Mapping,
                  preview: torch.Tensor | None) -> None:
        """Start, fill and finish the trial's run; on failure, warn and go on."""
        import wandb

        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                  disable_git=True, save_code=False)
        try:
            run = wandb.init(project=self.project, entity=self.entity, group=self.group,
                             job_type="trial", name=f"{self.group}-trial{number}",
                             config={**self.run_config, **config, "trial": number},
                             mode=self.mode, dir=str(self.directory), reinit="create_new",
                             settings=settings)
            images = {} if preview is None else \
                {"samples": wandb.Image(grid_array(preview, scale=2))}
            with run:
                run.log({**metrics, **images})
        except Exception as err:
            log.warning("W&B logging of trial %d failed (%s); the study storage keeps it",
                        number, err)


def make_tracker(cfg, study_name: str, out_dir: Path, run_config: Mapping) -> Tracker:
    """The tracker named by ``logger.kind``."""
    if cfg.kind == "none":
        return NoTracker()
    return WandbTracker(cfg.project, cfg.get("entity"), study_name, cfg.mode,
                        Path(cfg.dir) if cfg.get("dir") else out_dir, run_config)
