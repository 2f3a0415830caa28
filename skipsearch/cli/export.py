"""``skipsearch export``: write the best schedule per NFE of a study to YAML."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..config import final_protocol, study_name, validate
from ..export import export_best
from ..search.results import confirmed
from ..search.study import open_sweep


def run_export(cfg: DictConfig) -> list[Path]:
    """Export from the study named by the config (the same overrides as the sweep).

    Trials confirmed under the config's final-score protocol are ranked by that score.
    """
    validate(cfg, "export")
    name = study_name(cfg)
    url = str(cfg.storage.url)
    study = open_sweep(cfg.storage, name)
    scores = confirmed(study, final_protocol(cfg))
    paths = export_best(study, Path(cfg.export_dir), url, scores)
    for path in paths:
        print(path)
    return paths
