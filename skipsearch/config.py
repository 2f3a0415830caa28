"""One command's settings: each component checks its own config group; this composes them.

``build(cfg, command)`` runs every check the command needs, in one pass and before anything is
written, and returns the typed settings its runner uses; a bad value is a one-line ConfigError.
Torch-free until the last check (a CUDA device asked for must be visible).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from .errors import check
from .execution import Execution
from .keys import get, get_float, get_int
from .metrics.settings import MetricSettings
from .models.kinds import TEXT_TO_IMAGE_KINDS
from .models.spec import ModelSpec
from .preflight import check_port_free, check_writable, unwritable_reason
from .samplers.names import WINDOW_SAMPLERS
from .samplers.spec import SamplerSpec, sampler_choices
from .schedule import SkipSchedule
from .search.settings import PrunerSettings, SearchSettings, study_name
from .search.storage import StorageSettings
from .skip_config import SkipConfig
from .tracking import TrackerSettings

if TYPE_CHECKING:  # Optuna and YAML load only when a command reads a study or a schedule
    from .schedule_file import ExportedSchedule
    from .search.results import Protocol

# What of a schedule file each command reads (schedule_file.REQUIRED_KEYS).
SCHEDULE_SECTIONS = {"sample": ("model", "sampler", "score"), "inspect": ("model",),
                     "windows": ("model", "sampler"), "analyze": ("model", "sampler")}
# The folders each command writes, besides out_dir (its logs and caches).
WRITES = {"sweep": ("export_dir",), "export": ("export_dir",), "report": ("report.dir",),
          "sample": ("sample.dir",)}
STUDY_COMMANDS = ("sweep", "export", "report", "dashboard")
# Commands that sample from the model, and those that also score what they sample.
SAMPLING = ("sweep", "sample", "windows", "analyze", "report")
SCORING = ("sweep", "sample", "windows", "analyze", "refstats")


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
    # The command's own section, checked and cast (e.g. ``sample``: n, grid, score, dir).
    options: Mapping[str, Any] = field(default_factory=dict)
    # The sweep's solvers by name (``search.samplers``, else the ``sampler`` group's).
    samplers: Mapping[str, SamplerSpec] = field(default_factory=dict)

    def fixed_schedule(self, levels: Sequence[int]) -> SkipSchedule:
        """The ``skip`` group's schedule on the model's skip ``levels`` (profiles in sigma)."""
        return self.skip.schedule(levels, (self.sampler.sigma_min, self.sampler.sigma_max))

    @property
    def final_protocol(self) -> Protocol:
        """The confirmation's protocol: ``metric.final_samples`` images on their own seeds."""
        from .search.results import Protocol

        return Protocol(self.metric.final, self.metric.fid_infinity)


def build(cfg: DictConfig, command: str) -> Settings:
    """Check every key ``command`` reads and return its settings; the first problem raises."""
    check_output(cfg, command)
    parts: dict[str, object] = {"study_name": study_name(cfg)}
    if command in STUDY_COMMANDS:
        parts["storage"] = StorageSettings.from_config(cfg, must_exist=command != "sweep")
    options = parts["options"] = command_options(cfg, command)
    if command == "dashboard":
        return Settings(command, Path(str(cfg.out_dir)), **parts)
    draws = command in SAMPLING and not (command == "report" and options["grid"] == 0)
    if draws or command in ("inspect", "refstats"):
        parts["execution"] = Execution.from_config(cfg)
    if draws or command == "inspect":
        parts["model"] = ModelSpec.from_config(cfg, command)
        parts["sampler"] = SamplerSpec.from_config(cfg)
        parts["skip"] = SkipConfig.from_config(cfg, searched=command == "sweep")
    scored = command in SCORING and not (command == "sample" and not options["score"])
    parts["metric"] = MetricSettings.from_config(cfg, scored=scored)
    if command == "sweep":
        parts["tracker"] = TrackerSettings.from_config(cfg)
        search = SearchSettings.from_config(cfg)
        parts["search"] = search
        parts["pruner"] = PrunerSettings.from_config(cfg, search.multi_objective)
        parts["samplers"] = sampler_choices(cfg, parts["sampler"])
    if command in SCHEDULE_SECTIONS and cfg.get("schedule") is not None:
        from .schedule_file import load_schedule

        parts["schedule_file"] = load_schedule(cfg.schedule, sections=SCHEDULE_SECTIONS[command])
    if command == "windows":
        check_windows(cfg, parts["sampler"], parts.get("schedule_file"))
    if "execution" in parts:
        parts["execution"].check_device()  # last: the one check that needs torch
    return Settings(command, Path(str(cfg.out_dir)), **parts)


def command_options(cfg: DictConfig, command: str) -> dict[str, Any]:
    """The command's own keys, checked and cast."""
    if command in ("sweep", "export"):
        return {"export_dir": Path(str(get(cfg, "export_dir")))}
    if command == "dashboard":
        port = get_int(cfg, "dashboard.port", 1)
        check(port <= 65535, "dashboard.port", port, "must be a TCP port, 1 .. 65535")
        host = str(get(cfg, "dashboard.host"))
        check_port_free(host, port)
        return {"host": host, "port": port}
    if command == "sample":
        n = get_int(cfg, "sample.n", 1) if cfg.sample.get("n") is not None else None
        return {"n": n, "grid": get_int(cfg, "sample.grid", 0),
                "score": bool(cfg.sample.score), "dir": Path(str(get(cfg, "sample.dir")))}
    report_dir = Path(str(get(cfg, "report.dir")))
    if command == "report":
        check(not report_dir.exists() or report_dir.is_dir(), "report.dir", str(report_dir),
              "is a file; give a folder")
        return {"grid": get_int(cfg, "report.grid", 0), "dir": report_dir}
    if command == "windows":
        count = OmegaConf.select(cfg, "windows.count")
        return {"width": get_int(cfg, "windows.width", 1), "report_dir": report_dir,
                "count": None if count is None else get_int(cfg, "windows.count", 1)}
    if command == "analyze":
        return {**analyze_options(cfg), "report_dir": report_dir}
    return {}


def check_output(cfg: DictConfig, command: str) -> None:
    """Every folder ``command`` writes must be writable; checked before anything is written."""
    out_dir = Path(get(cfg, "out_dir"))
    reason = unwritable_reason(out_dir)
    check(reason is None, "out_dir", str(out_dir),
          f"cannot write there ({reason}); give a writable folder, e.g. out_dir=outputs")
    for key in WRITES.get(command, ()):
        check_writable(key, Path(str(get(cfg, key))))
    if command == "sweep" and cfg.logger.get("kind") == "wandb" and cfg.logger.get("dir"):
        check_writable("logger.dir", Path(str(cfg.logger.dir)))


def check_windows(cfg: DictConfig, sampler: SamplerSpec,
                  exported: ExportedSchedule | None) -> None:
    """Enough levels for the windows, and a sampler that evaluates the network on its levels."""
    width, count = get_int(cfg, "windows.width", 1), OmegaConf.select(cfg, "windows.count")
    if count is not None:
        levels = sampler.steps  # the schedule file's sampler is the one studied
        if exported is not None:
            levels = int(exported.sampler["steps"])
        check(count * width <= levels, "windows.count", count,
              f"{count} windows of {width} levels need {count * width}, the sampler has "
              f"{levels}; lower windows.count or windows.width, or take more sampler steps")
    if sampler.name == "edm_stochastic":
        check(float(cfg.sampler.S_churn) == 0, "sampler.S_churn", cfg.sampler.S_churn,
              "churn evaluates the network between the levels, so windows of levels do not "
              "hold; set sampler.S_churn=0 or take sampler=heun")
    else:
        check(sampler.name in WINDOW_SAMPLERS, "sampler.name", sampler.name,
              f"choose one of: {', '.join(WINDOW_SAMPLERS)}")


def analyze_options(cfg: DictConfig) -> dict[str, Any]:
    """Image count, noise grid and noise seeds of the loss analysis."""
    low = get_float(cfg, "analyze.sigma_min", 0.0)
    options = {"n_images": get_int(cfg, "analyze.n_images", 1), "sigma_min": low,
               "sigma_max": get_float(cfg, "analyze.sigma_max", low),
               "n_sigmas": get_int(cfg, "analyze.n_sigmas", 1),
               "seed_start": get_int(cfg, "analyze.seed_start", 0)}
    kind = str(cfg.model.kind)
    check(kind not in TEXT_TO_IMAGE_KINDS, "model.kind", kind,
          "the loss analysis denoises reference images in pixel space; a latent "
          "text-to-image model has no such images; take a pixel-space model")
    return options


def check_train_toy(cfg: DictConfig) -> None:
    """The step counts of ``train-toy`` and the folders it writes."""
    get_int(cfg, "diffusion.steps", 1)
    get_int(cfg, "classifier.epochs", 1)
    get_int(cfg, "grid.steps", 1)
    if cfg.get("assets_dir"):
        check_writable("assets_dir", Path(str(cfg.assets_dir)))
    check_writable("docs_dir", Path(str(get(cfg, "docs_dir"))))
