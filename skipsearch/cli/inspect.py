"""``skipsearch inspect``: the discovered skips, bottom to top, and their coefficients."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from ..configuration.build import Settings, build
from ..configuration.errors import ConfigError
from ..models import load_model
from ..tuning.schedule import SkipSchedule
from ..tuning.schedule_file import check_fits


def freeu_columns(schedule: SkipSchedule, skips) -> dict[int, str]:
    """FreeU's (b, s) at each skip it touches, as text; {} when the schedule has no FreeU."""
    if not schedule.uses_freeu:
        return {}
    from ..tuning.freeu import FreeU, freeu_factors

    try:
        factors = freeu_factors(FreeU.from_dict(schedule.freeu), skips)
    except ValueError as err:
        raise ConfigError("freeu", dict(schedule.freeu), str(err)) from None
    return {i: f"{b:.4f}, {s:.4f}" for i, (b, s) in factors.items()}


def run_inspect(cfg: DictConfig, settings: Settings | None = None) -> None:
    """Print level, resolution, channels, hooked module and rho for every skip."""
    settings = settings or build(cfg, "inspect")
    model = load_model(settings.model.section, "cpu")
    skips = model.denoiser.skips
    exported = settings.schedule_file
    if exported is not None:
        check_fits(exported, model)
        schedule = exported.schedule
    else:
        schedule = settings.fixed_schedule([p.level for p in skips])
    freeu = freeu_columns(schedule, skips)
    title = f"{model.name}: {len(skips)} skips, bottom (next to the bottleneck) to top"
    table = Table(title=title)
    for col in ("i", "level", "resolution", "skip ch", "block in ch", "module", "rho",
                *(("FreeU b, s",) if freeu else ())):
        table.add_column(col, justify="left" if col == "module" else "right", no_wrap=True)
    for p, rho in zip(skips, schedule.coefficients, strict=True):
        table.add_row(str(p.index), str(p.level), f"{p.resolution}x{p.resolution}",
                      str(p.skip_channels), str(p.in_channels), p.module_name, f"{rho:.4f}",
                      *((freeu.get(p.index, "-"),) if freeu else ()))
    Console(width=max(Console().width, 120)).print(table)
