"""``skipsearch inspect``: the discovered skips, bottom to top, and their coefficients."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from ..configuration.build import Settings, build
from ..models import load_model
from ..tuning.schedule_file import check_fits


def run_inspect(cfg: DictConfig, settings: Settings | None = None) -> None:
    """Print level, resolution, channels, hooked module and rho for every skip."""
    settings = settings or build(cfg, "inspect")
    model = load_model(settings.model.section, "cpu")
    skips = model.denoiser.skips
    exported = settings.schedule_file
    if exported is not None:
        check_fits(exported, model)
        coefficients = exported.schedule.coefficients
    else:
        coefficients = settings.fixed_schedule([p.level for p in skips]).coefficients
    title = f"{model.name}: {len(skips)} skips, bottom (next to the bottleneck) to top"
    table = Table(title=title)
    for col in ("i", "level", "resolution", "skip ch", "block in ch", "module", "rho"):
        table.add_column(col, justify="left" if col == "module" else "right", no_wrap=True)
    for p, rho in zip(skips, coefficients, strict=True):
        table.add_row(str(p.index), str(p.level), f"{p.resolution}x{p.resolution}",
                      str(p.skip_channels), str(p.in_channels), p.module_name, f"{rho:.4f}")
    Console(width=max(Console().width, 120)).print(table)
