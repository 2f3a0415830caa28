"""``skipsearch sweep``: run (or resume) the Optuna study and export the best schedules."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState
from rich.console import Console

from .. import __version__
from ..config import final_protocol, sampler_choices, sampler_spec, study_name, validate
from ..errors import Interrupted, RunFailedError, describe_failure, environment_cause
from ..export import export_best, safe_url
from ..runtime import (
    build_model,
    build_scorer,
    metric_provenance,
    precision_provenance,
    setup_device,
)
from ..search.allocate import run_cells
from ..search.bounds import expand_cell
from ..search.confirm import confirm_top
from ..search.group import Sweep, load_sweep
from ..search.limit import answer, limit_line, score_limit_baselines
from ..search.objective import TRIAL_ERRORS, TrialContext, make_objective
from ..search.pruning import make_pruner, stage_counts
from ..search.space import build_space
from ..search.study import FINISHED, make_storage, open_cells
from ..search.summary import SummaryRow, study_tables, summarize
from ..search.warm import warm_start
from ..tracking import make_tracker
from .tables import summary_table


def study_provenance(cfg: DictConfig, model, scorer) -> dict:
    """What a study's FIDs depend on; a resumed study must match it."""
    return {
        "skipsearch_version": __version__,
        "model_name": model.name, "model_sha256": model.sha256,
        "sampler": sampler_spec(cfg).to_dict(),
        "parameterization": str(cfg.skip.parameterization),
        "skips": [asdict(p) for p in model.denoiser.skips],
        "metric": metric_provenance(scorer, cfg),
        "precision": precision_provenance(cfg),
        "n_samples": int(cfg.metric.n_samples), "seed_start": int(cfg.metric.seed_start),
    }


def print_summary(study: Sweep, rows: list[SummaryRow], exports: list[Path],
                  cfg: DictConfig, log_dir: str | None, limit: str | None = None) -> None:
    """The closing table and where everything lives."""
    console = Console(width=max(Console().width, 160))
    table = summary_table(study, rows, cfg.metric.n_samples, cfg.metric.final_samples)
    console.print(table)
    if len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: t.values[1])
        console.print("Pareto front of the search (NFE: FID, trial): " + ", ".join(
            f"{int(t.values[1])}: {t.values[0]:.3f} (#{t.number})" for t in front))
    if limit:
        console.print(limit)
    for row in rows:
        if row.on_bound:
            console.print(f"on a bound: NFE {row.nfe} best {row.on_bound}; the optimum may lie "
                          "beyond it (search.expand_bounds=true widens it)")
    unsure = [r.nfe for r in rows if r.significant is False]
    if unsure:
        console.print(f"not significant: the 95% interval of the change reaches zero at NFE "
                      f"{', '.join(map(str, unsure))}; those schedules are never best.yaml")
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    if pruned:
        console.print(f"pruned:  {pruned} trials stopped early")
    console.print(f"study:   {study.study_name} in {safe_url(str(cfg.storage.url))}")
    console.print(f"exports: {exports[0].parent if exports else '-'}")
    if log_dir:
        console.print(f"logs:    {log_dir}")
    if cfg.logger.kind == "wandb":
        console.print(f"W&B:     {Path(cfg.logger.get('dir') or cfg.out_dir) / 'wandb'}")


def run_sweep(cfg: DictConfig, log_dir: str | None = None) -> Sweep:
    """Create or resume the sweep's cells, run each to ``search.n_trials``, confirm, export.

    Ctrl-C, a full disk or a lost database end it with one line saying how many trials are
    finished (they stay in the study) and how to resume.
    """
    validate(cfg, "sweep")
    opened: list[optuna.Study] = []
    try:
        return sweep(cfg, log_dir, opened.extend)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {finished_text(opened)}, resume with the same "
                          "command") from None
    except Exception as err:
        cause = environment_cause(err)  # a full disk or a failed database, maybe via Optuna
        if cause is None:
            raise
        kept = (f"{finished_text(opened)} and stay in the study" if opened
                else "no trial had started")
        raise RunFailedError(f"{describe_failure(cause)}; {kept}; resume with the same "
                             "command once that is fixed") from None


def finished_text(opened: Sequence[optuna.Study]) -> str:
    """'N trials finished' in the opened cells, if their database can still be read."""
    try:
        done = sum(len(s.get_trials(deepcopy=False, states=FINISHED)) for s in opened)
        return f"{done} trials finished"
    except Exception:  # the database itself is gone
        return "the trials that finished before"


class QuietInterrupt(logging.Filter):
    """Drop Optuna's two warnings on a trial stopped by Ctrl-C (the CLI prints one line)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending = False  # the second warning of an interrupted trial is still to come

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the warning carrying a KeyboardInterrupt and the one after it."""
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.pending = True
            return False
        if self.pending and "failed with value" in record.getMessage():
            self.pending = False
            return False
        return True


def sweep(cfg: DictConfig, log_dir: str | None,
          on_open: Callable[[Sequence[optuna.Study]], object]) -> Sweep:
    """``run_sweep``'s work; ``on_open`` receives the cells' studies once they are open."""
    device = setup_device(cfg)
    model = build_model(cfg, device)
    scorer = build_scorer(cfg, device, model)
    levels = [p.level for p in model.denoiser.skips]
    sampler = sampler_spec(cfg)
    steps = [sampler.steps] if sampler.sigma_list is not None else cfg.search.steps
    space = build_space(str(cfg.skip.parameterization), cfg.skip.space, steps, levels,
                        cfg.skip.get("window_space"), cfg.skip.get("profiles") or (),
                        (sampler.sigma_min, sampler.sigma_max), sampler_choices(cfg),
                        cfg.search.get("disc_rho"))
    name = study_name(cfg)
    objectives = list(cfg.search.objectives)
    stages = stage_counts(list(cfg.pruner.stages), int(cfg.metric.n_samples))
    storage = make_storage(cfg.storage)
    cells = space.cells()
    studies, spaces = open_cells(name, cells, storage, space, cfg.search,
                                 study_provenance(cfg, model, scorer), objectives,
                                 make_pruner(cfg.pruner, stages))
    on_open(studies)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config.pop("storage", None)  # may hold a database password
    tracker = make_tracker(cfg.logger, name, Path(cfg.out_dir), run_config)
    start = int(cfg.metric.seed_start)
    seeds = range(start, start + int(cfg.metric.n_samples))
    ctx = TrialContext(model, space, seeds, int(cfg.batch_size), device, scorer, tracker,
                       stages, objectives)
    target = int(cfg.search.n_trials)
    optuna_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, QuietInterrupt) for f in optuna_log.filters):
        optuna_log.addFilter(QuietInterrupt())
    warm = bool(cfg.search.get("warm_start")) and cfg.search.sampler != "grid"
    startup = int(cfg.search.get("n_startup_trials", 0)) if warm else 0
    expand = bool(cfg.search.get("expand_bounds")) and cfg.search.sampler != "grid"

    def before(i: int) -> None:
        """Widen a bound the cell's best sits on; queue the neighbours' best in its start-up."""
        if expand:
            ranges = expand_cell(studies[i], spaces[i].distributions(),
                                 float(cfg.search.expand_step), cfg.search.bound_limit)
            if ranges is not None:
                spaces[i] = spaces[i].with_ranges(ranges)
        warm_start(studies, cells, i, spaces[i], startup, target)

    objectives_ = [make_objective(ctx, cell, target, lambda i=i: spaces[i])
                   for i, cell in enumerate(cells)]
    run_cells(studies, objectives_, target, TRIAL_ERRORS, before)
    study = load_sweep(storage, name)
    scores = {}
    if int(cfg.search.confirm_top_k) > 0:
        scores = confirm_top(study, model, final_protocol(cfg), int(cfg.search.confirm_top_k),
                             int(cfg.batch_size), device, scorer,
                             int(cfg.search.get("confirm_blocks", 10)))
    exports = export_best(study, Path(cfg.export_dir), str(cfg.storage.url), scores)
    rows = summarize(study, scores)
    limit = None
    if scores and cfg.search.get("limit_steps"):
        protocol = final_protocol(cfg)
        score_limit_baselines(study, model, protocol, list(sampler_choices(cfg).values()),
                              list(cfg.search.limit_steps), int(cfg.batch_size), device, scorer)
        limit = answer(study, model, protocol, scores, rows, int(cfg.batch_size), device,
                       scorer, int(cfg.search.get("confirm_blocks", 10)))
    tracker.log_study(study_tables(study, rows, exports[0].parent))
    print_summary(study, rows, exports, cfg, log_dir, limit_line(limit))
    return study
