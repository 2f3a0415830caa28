"""One command's settings: each component checks its own config group; this composes them.

``build(cfg, command)`` runs every check the command needs, in one pass and before anything is
written, and returns the typed settings its runner uses; a bad value is a one-line ConfigError.
Torch-free until the last check (a CUDA device asked for must be visible).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from ..execution.settings import Execution
from ..metrics.settings import MetricSettings
from ..models.spec import ModelSpec
from ..samplers.spec import SamplerSpec, sampler_choices
from ..search.settings import PrunerSettings, SearchSettings, study_name
from ..search.storage import StorageSettings
from ..tracking import TrackerSettings
from ..tuning.schedule import SkipSchedule
from ..tuning.skip_config import SkipConfig
from .commands import COMMANDS
from .errors import check
from .keys import get_path
from .options import Options, command_options
from .preflight import check_writable, unwritable_reason

if TYPE_CHECKING:  # Optuna and YAML load only when a command reads a study or a schedule
    from ..search.results import Protocol
    from ..tuning.schedule_file import ExportedSchedule

@dataclass(frozen=True)
class Settings:
    """What a command's runner uses, built once from the composed config.

    A component is None when the command does not use it.
    """

    command: str
    out_dir: Path
    execution: Execution | None = None
    model: ModelSpec | None = None
    sampler: SamplerSpec | None = None
    skip: SkipConfig | None = None
    metric: MetricSettings | None = None
    search: SearchSettings | None = None
    pruner: PrunerSettings | None = None
    storage: StorageSettings | None = None
    tracker: TrackerSettings | None = None
    schedule_file: ExportedSchedule | None = None
    study_name: str | None = None
    # The command's own section, checked and typed (``options.py``); None if it has none.
    options: Options | None = None
    # The sweep's solvers by name (``search.samplers``, else the ``sampler`` group's).
    samplers: Mapping[str, SamplerSpec] = field(default_factory=dict)

    def fixed_schedule(self, levels: Sequence[int]) -> SkipSchedule:
        """The ``skip`` group's schedule on the model's skip ``levels`` (profiles in sigma)."""
        return self.skip.schedule(levels, (self.sampler.sigma_min, self.sampler.sigma_max))

    @property
    def final_protocol(self) -> Protocol:
        """The confirmation's protocol: ``metric.final_samples`` images on their own seeds."""
        from ..search.results import Protocol

        return Protocol(self.metric.final, self.metric.fid_infinity)


def build(cfg: DictConfig, command: str) -> Settings:
    """Check every key ``command`` reads and return its settings; the first problem raises."""
    check_output(cfg, command)
    parts: dict[str, object] = {"study_name": study_name(cfg)}
    what = COMMANDS[command]
    if what.study:
        parts["storage"] = StorageSettings.from_config(cfg, must_exist=command != "sweep")
    options = parts["options"] = command_options(cfg, command)
    if command == "dashboard":
        return Settings(command, Path(cfg.out_dir), **parts)
    draws = what.samples and not (command == "report" and options.grid == 0)
    if draws or command in ("inspect", "refstats"):
        parts["execution"] = Execution.from_config(cfg)
    if draws or command == "inspect":
        parts["model"] = ModelSpec.from_config(cfg, command)
        parts["sampler"] = SamplerSpec.from_config(cfg)
        parts["skip"] = SkipConfig.from_config(cfg, searched=command == "sweep")
    scored = what.scores and not (command == "sample" and not options.score)
    search = SearchSettings.from_config(cfg) if command == "sweep" else None
    parts["metric"] = MetricSettings.from_config(
        cfg, scored=scored, objectives=search.objectives if search else (),
        confirming=search is not None and search.confirm_top_k > 0)
    if search is not None:
        parts["tracker"] = TrackerSettings.from_config(cfg)
        parts["search"] = search
        parts["pruner"] = PrunerSettings.from_config(cfg, search.multi_objective)
        parts["samplers"] = sampler_choices(cfg, parts["sampler"])
    if what.schedule_sections and cfg.get("schedule") is not None:
        from ..tuning.schedule_file import load_schedule

        parts["schedule_file"] = load_schedule(cfg.schedule, sections=what.schedule_sections)
    if command == "windows":
        options.check_windows(cfg, parts["sampler"], parts.get("schedule_file"))
    if "execution" in parts:
        parts["execution"].check_device()  # last: the one check that needs torch
    return Settings(command, Path(cfg.out_dir), **parts)


def check_schedule_overrides(command: str, overrides: Sequence[str]) -> None:
    """With ``schedule=FILE``, an override of what the file fixes is refused, not ignored."""
    given = [(o.split("=", 1)[0].lstrip("+~"), o.split("=", 1)[1]) for o in overrides
             if "=" in o]
    if not any(k == "schedule" and v not in ("", "null") for k, v in given):
        return
    for key, value in given:
        fixed = next((f for f in COMMANDS[command].fixed_by_schedule
                      if key == f or key.startswith(f"{f}.")), None)
        check(fixed is None, key, value,
              f"schedule=FILE fixes {fixed} (the file's own values are used); drop this "
              "override, or drop schedule= to use the config's")


def check_output(cfg: DictConfig, command: str) -> None:
    """Every folder ``command`` writes must be writable; checked before anything is written."""
    out_dir = Path(get_path(cfg, "out_dir"))
    reason = unwritable_reason(out_dir)
    check(reason is None, "out_dir", str(out_dir),
          f"cannot write there ({reason}); give a writable folder, e.g. out_dir=outputs")
    for key in COMMANDS[command].writes:
        check_writable(key, Path(get_path(cfg, key)))
    if command == "sweep" and cfg.logger.get("kind") == "wandb" and \
            cfg.logger.get("dir") is not None:
        check_writable("logger.dir", Path(get_path(cfg, "logger.dir")))
