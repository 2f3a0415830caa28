"""``skipsearch windows``: the window study of one schedule (schedule=FILE or the skip config)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from ..analysis.windows import (
    WindowRow,
    evaluated_levels,
    noise_windows,
    run_window_study,
    write_window_csv,
)
from ..config import validate
from ..errors import ConfigError
from ..report.instruments import WINDOWS_CSV, save_windows
from ..runtime import build_model, build_scorer, setup_device
from .instruments import report_folder, studied_schedule


def describe(row: WindowRow) -> str:
    """One progress line."""
    where = "every level" if row.window is None else (
        f"levels {row.window.first_step}-{row.window.last_step} "
        f"(sigma {row.window.sigma_hi:.4g} .. {row.window.sigma_lo:.4g})")
    return f"{row.kind:8s} {where:40s} FID {row.fid:10.4f}  change {row.change:+.4f}"


def run_windows(cfg: DictConfig) -> dict:
    """Score the baseline, the full schedule and each window; write windows.csv and .png."""
    validate(cfg, "windows")
    device = setup_device(cfg)
    model = build_model(cfg, device)
    schedule, sampler, study = studied_schedule(cfg, model)
    levels = evaluated_levels(sampler.sigmas())
    count = OmegaConf.select(cfg, "windows.count")
    try:
        windows = noise_windows(levels, int(cfg.windows.width), count)
    except ValueError as err:
        raise ConfigError("windows.count", count, f"{err}; lower windows.count or "
                          "windows.width, or take more sampler steps") from None
    scorer = build_scorer(cfg, device, model)
    start = int(cfg.metric.seed_start)
    seeds = range(start, start + int(cfg.metric.n_samples))
    print(f"{len(windows)} windows of {cfg.windows.width} of the {len(levels)} levels of "
          f"{sampler.name} with {sampler.steps} steps ({sampler.nfe} NFE), "
          f"{len(seeds)} images each")
    rows = run_window_study(model, schedule, sampler, windows, seeds, int(cfg.batch_size),
                            device, scorer, on_row=lambda r: print(describe(r), flush=True))
    folder = report_folder(cfg, study)
    csv_path = write_window_csv(rows, folder / WINDOWS_CSV)
    png = save_windows(rows, folder)
    print(f"{csv_path}\n{png}")
    return {"rows": rows, "csv": csv_path, "png": png}
