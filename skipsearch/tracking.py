"""Experiment tracking: W&B runs per trial and per study, grouped; offline without an API key.

A tracking failure never fails a trial: the study storage is the record, W&B is a view of it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from omegaconf import DictConfig

from .configuration.keys import get_choice, get_float

if TYPE_CHECKING:  # the config check reads LOGGER_KINDS and WANDB_MODES without torch
    import torch

log = logging.getLogger(__name__)
LOGGER_KINDS = ("wandb", "none")
WANDB_MODES = ("auto", "online", "offline")


class Tracker(Protocol):
    """What the search needs from a tracker."""

    def log_trial(self, name: str, config: Mapping, metrics: Mapping,
                  preview: torch.Tensor | None,
                  stages: Sequence[tuple[int, float]] = ()) -> None:
        """Record one finished (or pruned) trial."""

    def log_study(self, summary: StudySummary) -> None:
        """Record the study: its trials, its front and its exported schedules."""


@dataclass(frozen=True)
class StudySummary:
    """What the study run shows: a table of trials, the score-vs-NFE front, the export folder.

    ``metric``: the search metric's registered name (empty: the run config's ``metric.name``).
    """

    columns: list[str]
    trials: list[list]
    front_columns: list[str]
    front: list[list]
    exports: Path | None
    per_nfe_columns: list[str] = field(default_factory=list)
    per_nfe: list[list] = field(default_factory=list)  # the summary's table, one row per NFE
    metric: str = ""
    figure: Path | None = None  # the score-vs-NFE figure with its 95% intervals (a PNG)

    def reversals(self) -> dict[str, str]:
        """NFE -> the metrics its best's gain reverses on, for the NFEs where it does."""
        if "reversed_on" not in self.per_nfe_columns:
            return {}
        nfe, rev = (self.per_nfe_columns.index(c) for c in ("nfe", "reversed_on"))
        return {str(row[nfe]): str(row[rev]) for row in self.per_nfe if row[rev]}


def metric_label(name: str) -> str:
    """How W&B names metric ``name``: its registered label, else the name (``score``)."""
    from .metrics.registry import label

    return label(name) if name else "score"


class NoTracker:
    """``logger=none``: records nothing."""

    def log_trial(self, name: str, config: Mapping, metrics: Mapping,
                  preview: torch.Tensor | None,
                  stages: Sequence[tuple[int, float]] = ()) -> None:
        """Do nothing."""

    def log_study(self, summary: StudySummary) -> None:
        """Do nothing."""


def wandb_mode(requested: str) -> str:
    """``auto`` means online when WANDB_API_KEY is set, offline otherwise."""
    if requested != "auto":
        return requested
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def artifact_name(text: str) -> str:
    """``text`` with every character W&B does not allow in artifact names replaced by '-'."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", text)


class WandbTracker:
    """W&B runs grouped by study: one per trial (job_type=trial), one for the study.

    When an online run fails (no network, server down), the tracker switches to offline runs,
    which ``wandb sync`` uploads later; if that fails too it warns, since the study storage is
    the record.
    """

    def __init__(self, project: str, entity: str | None, group: str, mode: str,
                 directory: Path, run_config: Mapping, init_timeout: float = 60.0) -> None:
        self.project, self.entity, self.group = project, entity, group
        self.init_timeout = init_timeout
        self.mode = wandb_mode(mode)
        self.directory = directory
        self.run_config = dict(run_config)
        directory.mkdir(parents=True, exist_ok=True)
        # stage artifact files under the output folder (not the home folder), so a copy of
        # it holds everything `wandb sync` needs; a WANDB_DATA_DIR the user set wins
        os.environ.setdefault("WANDB_DATA_DIR", str(directory / "wandb" / "data"))

    def _run(self, what: str, fill: Callable, job_type: str, name: str,
             config: Mapping) -> None:
        """Start a run, let ``fill(run)`` log into it, finish it; fall back offline on failure."""
        import wandb

        for mode in dict.fromkeys((self.mode, "offline")):
            settings = wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                      disable_git=True, save_code=False,
                                      init_timeout=self.init_timeout)
            try:
                run = wandb.init(project=self.project, entity=self.entity, group=self.group,
                                 job_type=job_type, name=name, config=dict(config), mode=mode,
                                 dir=str(self.directory), reinit="create_new",
                                 settings=settings)
                with run:
                    fill(run)
                return
            except Exception as err:
                log.warning("W&B logging of %s failed in %s mode (%s)%s", what, mode,
                            " ".join(str(err).split()),
                            "; switching to offline runs" if mode != "offline"
                            else "; the study storage keeps it")
                self.mode = "offline"

    def log_trial(self, name: str, config: Mapping, metrics: Mapping,
                  preview: torch.Tensor | None,
                  stages: Sequence[tuple[int, float]] = ()) -> None:
        """The trial's run: the score at each stage, every metric it got and a sample grid.

        ``metrics`` holds the search metric as ``score`` and under its own name, and every
        other metric the trial was scored on; all of them are logged as they come.
        """
        import wandb

        from .execution.images import grid_array

        def fill(run) -> None:
            for count, score in stages:
                run.log({"stage/n_samples": count, "stage/score": score})
            images = {} if preview is None else \
                {"samples": wandb.Image(grid_array(preview, scale=2))}
            run.log({**metrics, **images})

        self._run(f"trial {name}", fill, "trial", f"{self.group}/{name}",
                  {**self.run_config, **config, "trial": name})

    def metric(self, summary: StudySummary) -> str:
        """The sweep's search metric: the summary's, else the run config's ``metric.name``."""
        return summary.metric or str((self.run_config.get("metric") or {}).get("name") or "")

    def log_study(self, summary: StudySummary) -> None:
        """The study's run: trials, Pareto front, per-NFE table, reversals and schedules.

        The per-NFE table holds each confirm metric's score, change and ``worse`` columns;
        the run's summary names the search metric and the NFEs whose gain reverses.
        """
        import wandb

        name = self.metric(summary)
        label = metric_label(name)

        def fill(run) -> None:
            front = wandb.Table(columns=summary.front_columns, data=summary.front)
            run.log({"trials": wandb.Table(columns=summary.columns, data=summary.trials),
                     "pareto_front": front,
                     "score_vs_nfe": wandb.plot.line(
                         front, "nfe", "score", title=f"best {label} per NFE (Pareto front)")})
            if summary.per_nfe:
                run.log({"per_nfe": wandb.Table(columns=summary.per_nfe_columns,
                                                data=summary.per_nfe)})
            if summary.figure is not None and summary.figure.is_file():
                run.log({"score_vs_nfe_figure": wandb.Image(str(summary.figure))})
            run.summary["n_trials"] = len(summary.trials)
            run.summary["metric"] = name
            reversals = summary.reversals()
            run.summary["reversed"] = "; ".join(f"NFE {nfe}: reversed on {names}"
                                                for nfe, names in reversals.items()) or "-"
            if summary.exports is not None and summary.exports.is_dir():
                artifact = wandb.Artifact(artifact_name(f"{self.group}-schedules"),
                                          type="schedules")
                artifact.add_dir(str(summary.exports))
                run.log_artifact(artifact)

        self._run("the study", fill, "study", f"{self.group}-study", self.run_config)


@dataclass(frozen=True)
class TrackerSettings:
    """The ``logger`` group: no tracking, or W&B (project, entity, mode, folder)."""

    kind: str
    project: str = "skipsearch"
    entity: str | None = None
    mode: str = "auto"
    dir: Path | None = None
    init_timeout: float = 60.0

    @classmethod
    def from_config(cls, cfg: DictConfig) -> TrackerSettings:
        """The checked ``logger`` group."""
        kind = get_choice(cfg, "logger.kind", LOGGER_KINDS)
        if kind == "none":
            return cls(kind)
        logger = cfg.logger
        timeout = 60.0
        if logger.get("init_timeout") is not None:
            timeout = get_float(cfg, "logger.init_timeout", 0.0)
        return cls(kind, str(logger.get("project") or "skipsearch"), logger.get("entity"),
                   get_choice(cfg, "logger.mode", WANDB_MODES),
                   Path(str(logger.dir)) if logger.get("dir") else None, timeout)


def make_tracker(settings: TrackerSettings, study_name: str, out_dir: Path,
                 run_config: Mapping) -> Tracker:
    """The tracker named by ``logger.kind``; W&B writes under ``settings.dir`` or ``out_dir``."""
    if settings.kind == "none":
        return NoTracker()
    return WandbTracker(settings.project, settings.entity, study_name, settings.mode,
                        settings.dir or out_dir, run_config, settings.init_timeout)
