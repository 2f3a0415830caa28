"""``skipsearch export``: write the best schedule per NFE of a study to YAML."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..configuration.build import Settings, build
from ..search.export import export_best
from ..search.results import confirmed
from ..search.study import open_sweep


def run_export(cfg: DictConfig, settings: Settings | None = None) -> list[Path]:
    """Export from the study named by the config (the same overrides as the sweep).

    Trials confirmed under the config's final-score protocol are ranked by that score.
    """
    settings = settings or build(cfg, "export")
    study = open_sweep(settings.storage, settings.study_name)
    scores = confirmed(study, settings.final_protocol)
    paths = export_best(study, settings.options.export_dir, settings.storage.url, scores,
                        settings.metric.on_reversal)
    for path in paths:
        print(path)
    return paths
