"""Each command's own keys (``sample.*``, ``report.*``, ``windows.*`` ...), checked and typed.

Torch-free: ``config.build`` reads them with the components' settings, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from ..execution.seed_range import SEED_LIMIT
from ..models.kinds import TEXT_TO_IMAGE_KINDS
from ..samplers.names import SIGMA_LIMIT, WINDOW_SAMPLERS
from ..search.settings import is_study_name
from .errors import check
from .keys import get, get_bool, get_float, get_int, get_list, get_path
from .preflight import check_port_free

if TYPE_CHECKING:
    from ..samplers.spec import SamplerSpec
    from ..tuning.schedule_file import ExportedSchedule


@dataclass(frozen=True)
class ExportOptions:
    """``sweep`` and ``export``: where the schedule files go (``<export_dir>/<study>/``)."""

    export_dir: Path

    @classmethod
    def from_config(cls, cfg: DictConfig) -> ExportOptions:
        """``export_dir``."""
        return cls(Path(get_path(cfg, "export_dir")))


@dataclass(frozen=True)
class DashboardOptions:
    """``dashboard``: where optuna-dashboard listens (the port is checked free)."""

    host: str
    port: int

    @classmethod
    def from_config(cls, cfg: DictConfig) -> DashboardOptions:
        """``dashboard.host`` and a free ``dashboard.port``."""
        port = get_int(cfg, "dashboard.port", 1)
        check(port <= 65535, "dashboard.port", port, "must be a TCP port, 1 .. 65535")
        host = str(get(cfg, "dashboard.host"))
        check_port_free(host, port)
        return cls(host, port)


@dataclass(frozen=True)
class SampleOptions:
    """``sample``: how many images (None: the schedule's count), the grid, FID or not, where."""

    n: int | None
    grid: int
    score: bool
    dir: Path

    @classmethod
    def from_config(cls, cfg: DictConfig) -> SampleOptions:
        """The ``sample`` section."""
        n = get_int(cfg, "sample.n", 1) if cfg.sample.get("n") is not None else None
        return cls(n, get_int(cfg, "sample.grid", 0), get_bool(cfg, "sample.score"),
                   Path(get_path(cfg, "sample.dir")))


def report_dir(cfg: DictConfig) -> Path:
    """``report.dir``: the folder of every study's report and instruments."""
    folder = Path(get_path(cfg, "report.dir"))
    check(not folder.exists() or folder.is_dir(), "report.dir", str(folder),
          "is a file; give a folder")
    return folder


# The most images one sample grid of a report shows (each is drawn for every NFE, twice).
MAX_GRID_IMAGES = 1024


@dataclass(frozen=True)
class ReportOptions:
    """``report``: images per sample grid (0: none), the reports' folder, sweeps beside it."""

    grid: int
    dir: Path
    compare: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: DictConfig) -> ReportOptions:
        """The ``report`` section."""
        others = get_list(cfg, "report.compare") or []
        for name in others:
            check(isinstance(name, str) and is_study_name(name), "report.compare", others,
                  "list the names of other sweeps in the storage, e.g. [digits-heun-freeu]")
        return cls(get_int(cfg, "report.grid", 0, MAX_GRID_IMAGES), report_dir(cfg),
                   tuple(others))


@dataclass(frozen=True)
class WindowsOptions:
    """``windows``: levels per window, how many (None: cover all), the reports' folder."""

    width: int
    count: int | None
    report_dir: Path

    @classmethod
    def from_config(cls, cfg: DictConfig) -> WindowsOptions:
        """The ``windows`` section (``check_windows`` matches it to the sampler)."""
        count = OmegaConf.select(cfg, "windows.count")
        return cls(get_int(cfg, "windows.width", 1),
                   None if count is None else get_int(cfg, "windows.count", 1),
                   report_dir(cfg))

    def check_windows(self, cfg: DictConfig, sampler: SamplerSpec,
                      exported: ExportedSchedule | None) -> None:
        """Enough levels for the windows, and a sampler that evaluates the net on its levels."""
        if self.count is not None:
            levels = sampler.steps  # the schedule file's sampler is the one studied
            if exported is not None:
                levels = int(exported.sampler["steps"])
            need = self.count * self.width
            check(need <= levels, "windows.count", self.count,
                  f"{self.count} windows of {self.width} levels need {need}, the sampler has "
                  f"{levels}; lower windows.count or windows.width, or take more sampler steps")
        if sampler.name == "edm_stochastic":
            check(float(cfg.sampler.S_churn) == 0, "sampler.S_churn", cfg.sampler.S_churn,
                  "churn evaluates the network between the levels, so windows of levels do "
                  "not hold; set sampler.S_churn=0 or take sampler=heun")
        else:
            check(sampler.name in WINDOW_SAMPLERS, "sampler.name", sampler.name,
                  f"choose one of: {', '.join(WINDOW_SAMPLERS)}")


@dataclass(frozen=True)
class AnalyzeOptions:
    """``analyze``: reference images, the log-spaced noise grid, the noise seeds' start."""

    n_images: int
    sigma_min: float
    sigma_max: float
    n_sigmas: int
    seed_start: int
    report_dir: Path

    @classmethod
    def from_config(cls, cfg: DictConfig) -> AnalyzeOptions:
        """The ``analyze`` section; the model must denoise images in pixel space."""
        low = get_float(cfg, "analyze.sigma_min", 0.0, SIGMA_LIMIT)
        n_images = get_int(cfg, "analyze.n_images", 1)
        options = cls(n_images, low, get_float(cfg, "analyze.sigma_max", low, SIGMA_LIMIT),
                      get_int(cfg, "analyze.n_sigmas", 1, 10_000),
                      get_int(cfg, "analyze.seed_start", 0, SEED_LIMIT - n_images),
                      report_dir(cfg))
        kind = str(cfg.model.kind)
        check(kind not in TEXT_TO_IMAGE_KINDS, "model.kind", kind,
              "the loss analysis denoises reference images in pixel space; a latent "
              "text-to-image model has no such images; take a pixel-space model")
        return options


Options = (ExportOptions | DashboardOptions | SampleOptions | ReportOptions | WindowsOptions
           | AnalyzeOptions)
OPTIONS: dict[str, type] = {"sweep": ExportOptions, "export": ExportOptions,
                            "dashboard": DashboardOptions, "sample": SampleOptions,
                            "report": ReportOptions, "windows": WindowsOptions,
                            "analyze": AnalyzeOptions}


def command_options(cfg: DictConfig, command: str) -> Options | None:
    """The checked keys of ``command``'s own section; None for a command without one."""
    kind = OPTIONS.get(command)
    return None if kind is None else kind.from_config(cfg)
