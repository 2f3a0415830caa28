"""``skipsearch sweep``: run (or resume) the Optuna study and export the best schedules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState
from rich.console import Console

from .. import __version__
from ..configuration.build import Settings, build
from ..configuration.errors import (
    ConfigError,
    Interrupted,
    RunFailedError,
    describe_failure,
    environment_cause,
)
from ..configuration.urls import safe_url
from ..execution.runtime import (
    build_model,
    build_scorer,
    fit_settings,
    precision_provenance,
    score_key,
    setup_device,
)
from ..search import record as keys
from ..search.allocate import deleted_error, poll_seconds, run_cells
from ..search.bounds import expand_cell
from ..search.clock import phase
from ..search.confirm import confirm_top
from ..search.export import export_best
from ..search.group import Sweep, load_sweep, trial_label
from ..search.limit import answer, limit_line, score_limit_baselines
from ..search.objective import TRIAL_ERRORS, TrialContext, make_objective
from ..search.pruning import make_pruner
from ..search.results import failures_by_reason
from ..search.reuse import Reuse
from ..search.space import build_space
from ..search.study import FINISHED, make_storage, open_cells
from ..search.summary import SummaryRow, images_line, images_spent, study_tables, summarize
from ..search.warm import warm_start
from ..tracking import make_tracker
from .tables import summary_table


def check_method(skip, model) -> None:
    """FreeU needs spatial skips in two decoder stages: one line before anything is written."""
    if not skip.tunes_freeu:
        return
    from ..tuning.freeu import freeu_stages

    try:
        stages = freeu_stages(model.denoiser.skips)
    except ValueError as err:
        raise ConfigError("method", skip.method, f"FreeU does not apply to model {model.name}: "
                          f"{err}; use method=skip_tuning") from None
    if len(set(stages.values())) < 2:
        raise ConfigError("method", skip.method, f"model {model.name} has one decoder stage, "
                          "and FreeU acts on two; use method=skip_tuning")


def study_provenance(settings: Settings, model, scorer) -> dict:
    """What a study's scores depend on; a resumed study must match it."""
    seeds = settings.metric.search
    return {
        keys.VERSION: __version__,
        keys.MODEL_NAME: model.name, keys.MODEL_SHA256: model.sha256,
        keys.SAMPLER: settings.sampler.to_dict(),
        keys.PARAMETERIZATION: settings.skip.parameterization,
        keys.METHOD: settings.skip.method,
        **({keys.GUIDANCE: model.denoiser.guidance_scale} if model.denoiser.can_guide else {}),
        keys.SKIPS: [asdict(p) for p in model.denoiser.skips],
        keys.METRIC: scorer.provenance(),
        keys.PRECISION: precision_provenance(settings.execution),
        keys.SEARCH_N: seeds.count, keys.SEARCH_START: seeds.start,
    }


def save_score_figure(study: Sweep, rows: list[SummaryRow], protocol, path: Path) -> None:
    """The report's score-vs-NFE figure (95% intervals, the limit's baselines) at ``path``."""
    from ..report.figures import save_png, score_vs_nfe_figure
    from ..search.limit import limit_scores
    from ..search.results import metric_label

    save_png(score_vs_nfe_figure(rows, limit_scores(study, protocol), metric_label(study)),
             path)


def print_summary(study: Sweep, rows: list[SummaryRow], exports: list[Path],
                  settings: Settings, log_dir: str | None, limit: str | None = None,
                  images: str | None = None) -> None:
    """The closing table, where the images went and where everything lives."""
    console = Console(width=max(Console().width, 160))
    table = summary_table(study, rows, settings.metric.search.count, settings.metric.final.count)
    console.print(table)
    objectives = settings.search.objectives
    if len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: t.values[1])
        console.print(f"Pareto front of the search ({objectives[1]}: {objectives[0]}, trial): "
                      + ", ".join(f"{t.values[1]:.4g}: {t.values[0]:.4g} ({trial_label(study, t)})"
                                  for t in front))
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
    reversed_rows = [r for r in rows if r.reversed]
    if reversed_rows:
        never = ("never best.yaml" if settings.metric.on_reversal == "drop"
                 else "still eligible for best.yaml (metric.on_reversal=keep)")
        console.print("reversed: " + "; ".join(
            f"NFE {r.nfe} gains on {settings.metric.name} but is worse on "
            f"{', '.join(r.reversed)}" for r in reversed_rows) + f"; those schedules are {never}")
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    if pruned:
        console.print(f"pruned:  {pruned} trials stopped early")
    for reason, count in failures_by_reason(study).items():
        console.print(f"failed:  {count} trial{'s' if count > 1 else ''}: {reason}")
    if images:
        console.print(images)
    console.print(f"study:   {study.study_name} in {safe_url(settings.storage.url)}")
    console.print(f"exports: {exports[0].parent if exports else '-'}")
    if log_dir:
        console.print(f"logs:    {log_dir}")
    if settings.tracker.kind == "wandb":
        console.print(f"W&B:     {(settings.tracker.dir or settings.out_dir) / 'wandb'}")


def run_sweep(cfg: DictConfig, log_dir: str | None = None,
              settings: Settings | None = None) -> Sweep:
    """Create or resume the sweep's cells, run each to ``search.n_trials``, confirm, export.

    ``settings``: the checked settings of ``cfg`` (built here if not given). Ctrl-C, a full
    disk or a lost database end it with one line saying how many trials are finished (they
    stay in the study) and how to resume.
    """
    settings = settings or build(cfg, "sweep")
    opened: list[optuna.Study] = []
    try:
        return sweep(cfg, settings, log_dir, opened.extend)
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


def sweep(cfg: DictConfig, settings: Settings, log_dir: str | None,
          on_open: Callable[[Sequence[optuna.Study]], object]) -> Sweep:
    """``run_sweep``'s work; ``on_open`` receives the cells' studies once they are open."""
    device = setup_device(settings)
    model = build_model(settings, device)
    settings = fit_settings(settings, model)  # the network's trained noise range
    search, sampler = settings.search, settings.sampler
    check_method(settings.skip, model)
    levels = [p.level for p in model.denoiser.skips]
    steps = [sampler.steps] if sampler.sigma_list is not None else list(search.steps)
    skip = settings.skip
    space = build_space(skip.parameterization, skip.space_bounds(), steps, levels,
                        skip.window_bounds(), skip.profiles,
                        (sampler.sigma_min, sampler.sigma_max), settings.samplers,
                        search.disc_rho, search.guidance_scale,
                        getattr(model.denoiser, "guidance_scale", 1.0),
                        skip.freeu_space if skip.tunes_freeu else None, skip.tunes_skips)
    if search.sampler == "grid":
        space.check_grid(search.grid_points)  # before anything is written
    with phase("reference"):  # the metrics' networks and reference statistics
        scorer = build_scorer(settings, device, model)
    name = search.study_name
    objectives = list(search.objectives)
    storage = make_storage(settings.storage)
    cells = space.cells()
    studies, spaces = open_cells(name, cells, storage, space, search,
                                 study_provenance(settings, model, scorer), objectives,
                                 make_pruner(settings.pruner))
    on_open(studies)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config.pop("storage", None)  # may hold a database password
    tracker = make_tracker(settings.tracker, name, settings.out_dir, run_config)
    batch_size = settings.execution.batch_size
    reuse = Reuse(storage, score_key(settings, model), search.reuse,
                  folder=settings.out_dir / "cache" / "scores")
    ctx = TrialContext(model, space, settings.metric.search.seeds, batch_size, device, scorer,
                       tracker, list(settings.pruner.stages), objectives, reuse)
    target = search.n_trials
    searchable = search.sampler != "grid"
    startup = search.n_startup_trials if search.warm_start and searchable else 0
    expand = search.expand_bounds and searchable

    def before(i: int) -> None:
        """Widen a bound the cell's best sits on; queue the neighbours' best in its start-up."""
        if expand:
            ranges = expand_cell(studies[i], spaces[i].distributions(), search.expand_step,
                                 search.bound_limit)
            if ranges is not None:
                spaces[i] = spaces[i].with_ranges(ranges)
        warm_start(studies, cells, i, spaces[i], startup, target)

    objectives_ = [make_objective(ctx, cell, target, lambda i=i: spaces[i])
                   for i, cell in enumerate(cells)]
    run_cells(studies, objectives_, target, TRIAL_ERRORS, before, poll_seconds(studies[0]),
              search.max_failures)
    try:
        study = load_sweep(storage, name)
    except KeyError:  # deleted (studies delete --force) as the last trial ended
        raise deleted_error(name) from None
    scores = {}
    protocol = settings.final_protocol
    reuse.refresh()  # other workers' entries too
    if search.confirm_top_k > 0:
        scores = confirm_top(study, model, protocol, search.confirm_top_k, batch_size, device,
                             scorer, search.confirm_blocks, reuse, search.race, search.race_alpha)
    exports = export_best(study, settings.options.export_dir, settings.storage.url, scores,
                          settings.metric.on_reversal)
    rows = summarize(study, scores)
    limit = None
    if scores and search.limit_steps:
        score_limit_baselines(study, model, protocol, list(settings.samplers.values()),
                              list(search.limit_steps), batch_size, device, scorer,
                              search.confirm_blocks, reuse)
        limit = answer(study, model, protocol, scores, rows, batch_size, device, scorer,
                       search.confirm_blocks, reuse)
    figure = exports[0].parent / "score-vs-nfe.png" if rows else None
    if figure is not None:  # beside the exports: the figure of what they hold
        save_score_figure(study, rows, protocol if scores else None, figure)
    tracker.log_study(replace(study_tables(study, rows, exports[0].parent), figure=figure))
    definition = settings.metric.definition
    spent = images_line(images_spent(study, protocol if scores else None),
                        reuse.reused_images)
    print_summary(study, rows, exports, settings, log_dir,
                  limit_line(limit, definition.label, definition.higher_is_better), spent)
    return study
