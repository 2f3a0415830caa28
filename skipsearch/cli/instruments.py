"""What ``windows`` and ``analyze`` share: the schedule to study, its sampler, where to write."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..config import SCHEDULE_SECTIONS, sampler_spec, schedule_from_config, study_name
from ..errors import ConfigError
from ..export import check_fits, load_schedule
from ..models import LoadedModel
from ..samplers.spec import SamplerSpec
from ..schedule import SkipSchedule


def studied_schedule(cfg: DictConfig, model: LoadedModel
                     ) -> tuple[SkipSchedule, SamplerSpec, str]:
    """Schedule, sampler and study name: from ``schedule=FILE`` if given, else the config."""
    if cfg.get("schedule") is not None:
        exported = load_schedule(cfg.schedule, sections=SCHEDULE_SECTIONS["windows"])
        check_fits(exported, model)
        sampler = SamplerSpec.from_dict(exported.sampler, int(exported.sampler["steps"]))
        return exported.schedule, sampler, str(exported.study.get("name") or study_name(cfg))
    levels = [p.level for p in model.denoiser.skips]
    schedule = schedule_from_config(cfg, levels)
    if schedule.is_identity:
        raise ConfigError("skip.params", dict(schedule.params),
                          "every coefficient is 1.0, so there is nothing to study; give "
                          "schedule=FILE or e.g. skip.params.rho_top=0.8 "
                          "skip.params.rho_bottom=0.8")
    return schedule, sampler_spec(cfg), study_name(cfg)


def report_folder(cfg: DictConfig, study: str) -> Path:
    """The study's report folder, where `skipsearch report` finds the instruments' files."""
    return Path(str(cfg.report.dir)) / study
