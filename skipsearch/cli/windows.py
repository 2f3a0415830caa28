"""``skipsearch windows``: the window study of one schedule (schedule=FILE or the skip config)."""

from __future__ import annotations

from omegaconf import DictConfig

from ..analysis.windows import (
    WindowRow,
    evaluated_levels,
    noise_windows,
    run_window_study,
    write_window_csv,
)
from ..configuration.build import Settings, build
from ..configuration.errors import ConfigError
from ..execution.runtime import build_model, build_scorer, setup_device
from ..metrics.registry import label
from ..report.instruments import WINDOWS_CSV, save_windows
from .instruments import figure_title, instrument_folder, schedule_tag, studied_schedule


def describe(row: WindowRow, label: str = "FID") -> str:
    """One progress line (``label``: how the metric is named)."""
    where = "every level" if row.window is None else (
        f"levels {row.window.first_step}-{row.window.last_step} "
        f"(sigma {row.window.sigma_hi:.4g} .. {row.window.sigma_lo:.4g})")
    return f"{row.kind:8s} {where:40s} {label} {row.fid:10.4f}  change {row.change:+.4f}"


def run_windows(cfg: DictConfig, settings: Settings | None = None) -> dict:
    """Score the baseline, the full schedule and each window; write windows.csv and .png."""
    settings = settings or build(cfg, "windows")
    device = setup_device(settings)
    model = build_model(settings, device)
    schedule, sampler, study = studied_schedule(settings, model)
    if schedule.uses_freeu:
        given = settings.schedule_file
        key, value = ("schedule", str(given.path)) if given else \
            ("freeu.factors", dict(schedule.freeu))
        raise ConfigError(key, value, "FreeU acts at every noise level, so no window can place "
                          "it; study the coefficients alone (without schedule.freeu, or with "
                          "freeu.factors=null)")
    levels = evaluated_levels(sampler.sigmas())
    width, count = settings.options.width, settings.options.count
    try:
        windows = noise_windows(levels, width, count)
    except ValueError as err:
        raise ConfigError("windows.count", count, f"{err}; lower windows.count or "
                          "windows.width, or take more sampler steps") from None
    scorer = build_scorer(settings, device, model)
    seeds = settings.metric.search.seeds
    print(f"{len(windows)} windows of {width} of the {len(levels)} levels of "
          f"{sampler.name} with {sampler.steps} steps ({sampler.nfe} NFE), "
          f"{len(seeds)} images each")
    rows = run_window_study(model, schedule, sampler, windows, seeds,
                            settings.execution.batch_size, device, scorer,
                            on_row=lambda r: print(describe(r, label(settings.metric.name)),
                                                   flush=True))
    tag = schedule_tag(settings, schedule)
    folder = instrument_folder(settings, study, tag)
    csv_path = write_window_csv(rows, folder / WINDOWS_CSV)
    png = save_windows(rows, folder, figure_title(
        f"{label(settings.metric.name)} change per noise window", tag, sampler, len(seeds),
        "images"))
    print(f"{csv_path}\n{png}")
    return {"rows": rows, "csv": csv_path, "png": png}
