"""``skipsearch report``: an HTML page with figures, tables and sample grids of a study."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from optuna.trial import TrialState

from ..configuration.build import Settings, build
from ..configuration.errors import check
from ..execution.runtime import build_model, setup_device
from ..models import LoadedModel
from ..report.build import clear_folder, write_report
from ..report.samples import draw_grids
from ..search import record as keys
from ..search.group import Sweep, sweep_names
from ..search.record import TrialRecord, study_attrs
from ..search.results import confirmed
from ..search.study import make_storage, open_sweep
from ..tuning.schedule import coefficient_problem


def check_model(study: Sweep, model: LoadedModel) -> None:
    """The grids must come from the model the study searched, with usable schedules."""
    attrs = study_attrs(study)
    want, name = str(attrs.get(keys.MODEL_SHA256)), attrs.get(keys.MODEL_NAME)
    n_skips = len(model.denoiser.skips)
    fix = "give the sweep's model overrides, or report.grid=0 to skip the sample grids"
    check(n_skips == len(attrs.get(keys.SKIPS, ())), "model", model.name,
          f"study {study.study_name} was run with model {name} with "
          f"{len(attrs.get(keys.SKIPS, ()))} skips, and this one has {n_skips}; {fix}")
    check(model.sha256 == want, "model", model.name,
          f"study {study.study_name} was run with model {name} with weights sha256 {want[:12]},"
          f" and the weights given have sha256 {model.sha256[:12]}; {fix}")
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        problem = coefficient_problem(TrialRecord.of(t).schedule["coefficients"], n_skips)
        check(problem is None, "search.study_name", study.study_name,
              f"trial {t.number} holds an unusable schedule ({problem}); report.grid=0 "
              "skips the sample grids")


def beside(settings: Settings, storage, name: str) -> Sweep:
    """Another sweep of ``storage``, for ``report.compare``; one line if there is none."""
    known = sweep_names(storage)
    check(name in known, "report.compare", name,
          f"no sweep of that name in the storage; its sweeps: {', '.join(known) or 'none'}")
    return open_sweep(settings.storage, name, storage)


def run_report(cfg: DictConfig, settings: Settings | None = None) -> Path:
    """Write ``<report.dir>/<study>/index.html`` and its PNGs; returns the page's path."""
    settings = settings or build(cfg, "report")
    grid = settings.options.grid
    storage = make_storage(settings.storage)
    study = open_sweep(settings.storage, settings.study_name, storage)
    others = [beside(settings, storage, name) for name in settings.options.compare]
    protocol = settings.final_protocol
    scores = confirmed(study, protocol)
    folder = settings.options.dir / study.study_name
    model = device = None
    if grid > 0:
        device = setup_device(settings)
        model = build_model(settings, device)
        check_model(study, model)
    clear_folder(folder)  # only after every check: a failed run leaves the last report intact
    grids, grids_note = None, "report.grid=0: no sample grids were drawn"
    if model is not None:
        seeds = settings.metric.search.with_count(grid).seeds
        grids = draw_grids(model, study, scores, seeds, settings.execution.batch_size,
                           device, folder)
        grids_note = None
    index = write_report(study, folder, settings.storage.url, scores, protocol, grids, grids_note,
                         others)
    print(index)
    return index
