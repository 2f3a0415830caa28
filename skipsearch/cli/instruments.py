"""What ``windows`` and ``analyze`` share: the schedule to study, its sampler, where to write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..configuration.build import Settings
from ..configuration.errors import ConfigError, check
from ..execution.runtime import fit_sampler, fit_settings
from ..models import LoadedModel
from ..report.instruments import SCHEDULES_DIR
from ..samplers.spec import SamplerSpec
from ..search.settings import NAME_RULE, is_study_name
from ..tuning.schedule import SkipSchedule
from ..tuning.schedule_file import check_fits


def studied_schedule(settings: Settings, model: LoadedModel
                     ) -> tuple[SkipSchedule, SamplerSpec, str]:
    """Schedule, sampler and study name: from ``schedule=FILE`` if given, else the config.

    The sampler is fitted to the network's trained noise range (``runtime``'s fit).
    """
    exported = settings.schedule_file
    if exported is not None:
        check_fits(exported, model)
        sampler = fit_sampler(SamplerSpec.from_dict(exported.sampler,
                                                    int(exported.sampler["steps"])), model)
        name = str(exported.study.get("name") or settings.study_name)
        check(is_study_name(name), "schedule", str(exported.path),
              f"its study.name {name!r} becomes the report folder's name, and is not a folder "
              f"name ({NAME_RULE}); correct it in the file")
        return exported.schedule, sampler, name
    settings = fit_settings(settings, model)  # the profile's range uses the fitted levels
    levels = [p.level for p in model.denoiser.skips]
    schedule = settings.fixed_schedule(levels)
    if schedule.is_identity:
        raise ConfigError("skip.params", dict(schedule.params),
                          "every coefficient is 1.0, so there is nothing to study; give "
                          "schedule=FILE or e.g. skip.params.rho_top=0.8 "
                          "skip.params.rho_bottom=0.8")
    return schedule, settings.sampler, settings.study_name


def report_folder(settings: Settings, study: str) -> Path:
    """The study's report folder, where `skipsearch report` finds the instruments' files."""
    return settings.options.report_dir / study


def schedule_tag(settings: Settings, schedule: SkipSchedule) -> str:
    """A folder name for one studied schedule: the export's file name (``nfe011``), else
    ``config-`` and a hash of the schedule the config gave (its coefficients, window, profile).
    """
    exported = settings.schedule_file
    if exported is not None:
        return exported.path.stem
    text = json.dumps(schedule.to_dict(), sort_keys=True)
    return f"config-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def instrument_folder(settings: Settings, study: str, tag: str) -> Path:
    """Where ``windows`` and ``analyze`` write for one schedule: apart from other schedules."""
    return report_folder(settings, study) / SCHEDULES_DIR / tag


def figure_title(what: str, tag: str, sampler: SamplerSpec, count: int, unit: str) -> str:
    """A figure's title: what it shows, for which schedule, sampler and image count."""
    return (f"{what}: {tag}, {sampler.name} {sampler.steps} steps ({sampler.nfe} NFE), "
            f"{count} {unit}")
