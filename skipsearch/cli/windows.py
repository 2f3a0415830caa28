"""``skipsearch windows``: the window study of one schedule (schedule=FILE or the skip config)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from ..analysis.windows import (
    WindowRow,
    evaluated_levels,
    noise_windows,
    run_window_study,
    write_window_csv,
)
from ..configuration.build import Settings, build
from ..configuration.errors import ConfigError
from ..configuration.keys import get_bool
from ..execution.runtime import build_model, build_scorer, setup_device
from ..metrics.registry import label
from ..report.instruments import WINDOWS_CSV, save_windows
from .instruments import figure_title, instrument_folder, schedule_tag, studied_schedule

log = logging.getLogger(__name__)


def describe(row: WindowRow, label: str = "FID") -> str:
    """One progress line (``label``: how the metric is named)."""
    where = "every level" if row.window is None else (
        f"levels {row.window.first_step}-{row.window.last_step} "
        f"(sigma {row.window.sigma_hi:.4g} .. {row.window.sigma_lo:.4g})")
    return f"{row.kind:8s} {where:40s} {label} {row.fid:10.4f}  change {row.change:+.4f}"


def stored_baseline(cfg: DictConfig, settings: Settings, model, sampler,
                    scorer) -> float | None:
    """The baseline's score on these seeds if a sweep's storage holds it (read, never written).

    Only an existing study file or a server is read: no storage is created for it.
    """
    from ..configuration.preflight import study_file
    from ..execution.runtime import score_key
    from ..search.reuse import Reuse
    from ..search.storage import StorageSettings
    from ..search.study import make_storage
    from ..tuning.schedule import SkipSchedule

    url = OmegaConf.select(cfg, "storage.url")
    if not get_bool(cfg, "search.reuse", default=True) or not isinstance(url, str):
        return None
    path = study_file(url)
    if path is not None and not path.is_file():
        return None
    try:
        reuse = Reuse(make_storage(StorageSettings.from_config(cfg)), score_key(settings, model))
        seeds = settings.metric.search
        keys = reuse.keys(SkipSchedule.identity(len(model.denoiser.skips)), sampler, seeds, 0,
                          {scorer.primary: scorer.provenance()})
        known = reuse.get(keys)
    except Exception as err:  # an unreadable storage: score the baseline here
        log.info("no stored baseline read (%s)", err)
        return None
    if known is None:
        return None
    reuse.note("the baseline", seeds.count, known[scorer.primary].get("what", ""))
    return float(known[scorer.primary]["score"])


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
                            stored_baseline(cfg, settings, model, sampler, scorer),
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
