"""``skipsearch report``: an HTML page with figures, tables and sample grids of a study."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from optuna.trial import TrialState

from ..config import final_protocol, get, study_name, validate
from ..errors import check
from ..models import LoadedModel
from ..report.build import clear_folder, write_report
from ..report.samples import draw_grids
from ..runtime import build_model, setup_device
from ..schedule import coefficient_problem
from ..search import record as keys
from ..search.group import Sweep
from ..search.record import TrialRecord
from ..search.results import confirmed
from ..search.study import open_sweep
from ..seed_range import SeedRange


def check_model(study: Sweep, model: LoadedModel) -> None:
    """The grids must come from the model the study searched, with usable schedules."""
    attrs = study.user_attrs
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


def run_report(cfg: DictConfig) -> Path:
    """Write ``<report.dir>/<study>/index.html`` and its PNGs; returns the page's path."""
    validate(cfg, "report")
    grid = int(cfg.report.grid)
    folder = Path(str(get(cfg, "report.dir")))
    check(not folder.exists() or folder.is_dir(), "report.dir", str(folder),
          "is a file; give a folder")
    name = study_name(cfg)
    url = str(cfg.storage.url)
    study = open_sweep(cfg.storage, name)
    protocol = final_protocol(cfg)
    scores = confirmed(study, protocol)
    folder = folder / study.study_name
    model = device = None
    if grid > 0:
        device = setup_device(cfg)
        model = build_model(cfg, device)
        check_model(study, model)
    clear_folder(folder)  # only after every check: a failed run leaves the last report intact
    grids, grids_note = None, "report.grid=0: no sample grids were drawn"
    if model is not None:
        seeds = SeedRange(int(cfg.metric.seed_start), grid)
        grids = draw_grids(model, study, scores, seeds.seeds,
                           int(cfg.batch_size), device, folder)
        grids_note = None
    index = write_report(study, folder, url, scores, protocol, grids, grids_note)
    print(index)
    return index
