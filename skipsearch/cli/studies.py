"""``skipsearch studies | show | compare`` and ``--study NAME``: sweeps found by their names.

    skipsearch studies                      # every sweep in storage.url
    skipsearch show digits-heun-linear      # its table and where its exports are
    skipsearch studies delete NAME [--yes]
    skipsearch compare A B
    skipsearch export --study NAME          # the sweep's own record fills the keys it fixed

Nothing here imports torch or creates a storage: a storage that does not exist is an error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.table import Table

from ..configuration.errors import ConfigError
from ..configuration.paths import CONF_DIR
from ..configuration.urls import safe_url
from ..search import record as keys
from ..search.catalog import (
    CatalogEntry,
    SummaryRow,
    Sweep,
    catalog,
    delete_sweep,
    final_scores,
    higher_is_better,
    label_of,
    make_storage,
    metric_label,
    metric_name,
    open_sweep,
    plain_studies,
    running_trials,
    summarize,
)
from ..search.limit import limit_line, limit_records
from ..search.record import study_attrs
from ..search.side_by_side import difference_text, side_by_side
from ..search.storage import StorageSettings
from ..search.summary import fmt_delta, row_record
from . import MULTIRUN_FLAGS, compose_config, describe, fail, guarded, multirun_jobs
from .tables import (
    csv_table,
    latex_table,
    markdown_table,
    summary_cells,
    summary_table,
    summary_title,
)

STUDY_FLAG = "--study"
LIST_HINT = "`skipsearch studies` lists them"


class UsageError(Exception):
    """A command line these commands cannot read; printed as one line, exit code 2."""


def console() -> Console:
    """A console wide enough for the tables, on whatever stdout is now."""
    return Console(width=max(Console().width, 160))


def split(args: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Positional words, flags and key=value overrides, each in their order."""
    words, flags, overrides = [], [], []
    for arg in args:
        if "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        elif arg.startswith("-"):
            flags.append(arg)
        else:
            words.append(arg)
    return words, flags, overrides


def expect(command: str, words: list[str], names: list[str], flags: list[str],
           allowed: tuple[str, ...] = ()) -> None:
    """Exactly the positional ``names`` and no flag but ``allowed``; UsageError otherwise."""
    form = f"skipsearch {command} {' '.join(n.upper() for n in names)} [key=value ...]".strip()
    bad = [f for f in flags if f not in allowed]
    if bad:
        raise UsageError(f"{command}: unknown flag {bad[0]!r}; usage: {form}")
    if len(words) < len(names):
        raise UsageError(f"{command}: missing {names[len(words)].upper()}; usage: {form} "
                         f"({LIST_HINT})")
    if len(words) > len(names):
        extra = ", ".join(repr(w) for w in words[len(names):])
        raise UsageError(f"{command}: unexpected argument {extra}; usage: {form} "
                         "(overrides are key=value)")


class Opened:
    """The composed config, its checked storage settings and that storage, open once."""

    def __init__(self, overrides: list[str]) -> None:
        self.cfg = compose_config(overrides)
        # it must exist and answer: reading never creates a storage
        self.settings = StorageSettings.from_config(self.cfg, must_exist=True)
        self.storage = make_storage(self.settings)
        self.url = safe_url(self.settings.url)

    def sweep(self, name: str) -> Sweep:
        """Sweep ``name``; a ConfigError naming the sweeps there if there is none."""
        return open_sweep(self.settings, name, self.storage)


def run_studies(args: list[str]) -> int:
    """``studies``: one row per sweep; ``studies delete NAME [--yes]``."""
    words, flags, overrides = split(args)
    if words and words[0] == "delete":
        expect("studies delete", words[1:], ["study"], flags, ("--yes", "-y", "--force"))
        return run_delete(words[1], overrides, bool(set(flags) & {"--yes", "-y"}),
                          "--force" in flags)
    if words and not flags:  # with a flag (say --cfg job) the flag is what is wrong
        raise UsageError(f"studies: unknown subcommand {words[0]!r}; usage: skipsearch studies "
                         "[key=value ...] or skipsearch studies delete STUDY [--yes] [--force]")
    expect("studies", words, [], flags)
    opened = Opened(overrides)
    print_catalog(catalog(opened.storage), opened.url, plain_studies(opened.storage))
    return 0


def compact(best: dict[int, float]) -> str:
    """Best score per NFE in one cell: ``5: 12.31  7: 8.02``."""
    return "  ".join(f"{nfe}: {value:.4g}" for nfe, value in best.items()) or "-"


def print_catalog(entries: list[CatalogEntry], url: str, plain: Sequence[str] = ()) -> None:
    """The sweeps as a table (or one line saying there is none), then the studies left out."""
    if entries:
        console().print(catalog_table(entries, url))
    else:
        print(f"no sweeps in {url}; `skipsearch sweep` runs one")
    if plain:
        print(f"left out, not skipsearch sweeps (Optuna studies without a sweep's records): "
              f"{', '.join(plain)}")


def catalog_table(entries: list[CatalogEntry], url: str) -> Table:
    """One row per sweep: model, metric, cells, trials, best score per NFE, reversals."""
    table = Table(title=f"sweeps in {url}")
    for col in ("study", "model", "metric", "cells", "trials", "best per NFE",
                "reversed at NFE"):
        table.add_column(col, justify="left" if col in ("study", "model", "metric")
                         else "right", no_wrap=col != "best per NFE", overflow="fold")
    for e in entries:
        cells = "1 (one study)" if e.legacy else str(e.cells)
        table.add_row(e.name, e.model, e.metric, cells, f"{e.finished}/{e.trials}",
                      compact(e.best), ", ".join(map(str, e.reversed)) or "-")
    return table


def confirm_delete(name: str, cells: int, trials: int, url: str) -> bool:
    """Ask on the terminal; refuse (UsageError) when there is none to ask on."""
    if not sys.stdin.isatty():
        raise UsageError(f"studies delete: not deleting sweep {name} without a terminal to ask "
                         "on; add --yes to delete it")
    answer = input(f"delete sweep {name} ({cells} cells, {trials} trials) from {url}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def run_delete(name: str, overrides: list[str], yes: bool, force: bool = False) -> int:
    """Delete every cell study of sweep ``name`` after asking (or with ``--yes``).

    A sweep with running trials (a worker on it) is kept unless ``force``.
    """
    opened = Opened(overrides)
    study = opened.sweep(name)
    url = opened.url
    running = running_trials(study)
    if running and not force:
        raise UsageError(f"studies delete: sweep {name} has {running} running trial(s): a "
                         "worker is on it and would fail; stop its workers first, or add "
                         "--force to delete it anyway")
    if not yes and not confirm_delete(name, len(study.cells), len(study.trials), url):
        print(f"kept sweep {name}")
        return 1
    deleted = delete_sweep(opened.storage, name)
    print(f"deleted sweep {name}: {len(deleted)} cell studies, {len(study.trials)} trials "
          f"from {url}")
    return 0


def exports_of(folder: Path) -> list[str]:
    """The schedule files ``export`` wrote in ``folder``: best.yaml first, then per NFE."""
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.glob("nfe*.yaml"))
    return [n for n in ("best.yaml", "pareto.yaml") if (folder / n).is_file()] + names


def run_show(args: list[str]) -> int:
    """``show NAME``: the sweep's per-NFE table, its model and where its exports are."""
    words, flags, overrides = split(args)
    if "--format" in flags:
        raise UsageError("show: --format needs a value: --format=markdown, latex or csv")
    formats = [f for f in flags if f.startswith("--format=")]
    expect("show", words, ["study"], [f for f in flags if f not in formats])
    fmt = formats[-1].split("=", 1)[1] if formats else "table"
    if fmt not in SHOW_FORMATS:
        raise UsageError(f"show: --format={fmt} is not one of {', '.join(SHOW_FORMATS)}")
    opened = Opened(overrides)
    cfg, study = opened.cfg, opened.sweep(words[0])
    protocol, scores = final_scores(study)
    attrs = study_attrs(study)
    out = console()
    rows = summarize(study, scores)
    if fmt != "table":
        final = protocol.seed_range.count if protocol else None
        print(formatted(fmt, summary_title(study, rows, attrs.get(keys.SEARCH_N, "?"), final),
                        rows))
        return 0
    out.print(summary_table(study, rows, attrs.get(keys.SEARCH_N, "?"),
                            protocol.seed_range.count if protocol else None))
    for line in findings(study, rows, protocol):
        out.print(line)
    sha = str(attrs.get(keys.MODEL_SHA256, ""))[:12]
    out.print(f"study:   {study.study_name} in {opened.url}")
    out.print(f"model:   {attrs.get(keys.MODEL_NAME, '?')} (weights sha256 {sha or '?'})")
    if protocol is not None:
        out.print(f"final:   {len(scores)} trials confirmed on {protocol.seed_range.count} images "
                  f"from seed {protocol.seed_range.start}")
    folder = Path(str(cfg.export_dir)) / study.study_name
    files = exports_of(folder)
    recorded = attrs.get(keys.EXPORTS)  # where the sweep's last export went
    if not files and recorded and exports_of(Path(str(recorded))):
        folder = Path(str(recorded))
        files = exports_of(folder)
    where = (f"{folder}: {' '.join(files)}" if files else
             f"none in {folder}; `skipsearch export --study {study.study_name}` writes them")
    out.print(f"exports: {where}")
    return 0


SHOW_FORMATS = ("table", "markdown", "latex", "csv")


def formatted(fmt: str, title: str, rows: list[SummaryRow]) -> str:
    """The per-NFE table for a paper (``latex``), a page (``markdown``) or a sheet (``csv``)."""
    if fmt == "csv":
        return csv_table([row_record(r) for r in rows]).rstrip("\n")
    header, cells = summary_cells(rows)
    return (markdown_table if fmt == "markdown" else latex_table)(title, header, cells)


def findings(study: Sweep, rows: list[SummaryRow], protocol=None) -> list[str]:
    """The lines under ``show``'s table, as the sweep's summary printed them: the metrics,
    breaking the limit, best coefficients on a bound, unsure changes and reversed gains."""
    label = metric_label(study)
    others = list(dict.fromkeys(n for r in rows for n in r.confirm))
    also = f"; confirmed also on {', '.join(map(label_of, others))}" if others else ""
    way = "higher" if higher_is_better(study) else "lower"
    lines = [f"metric:  {label} ({metric_name(study)}, {way} is better){also}"]
    answer = limit_records(study, protocol).get("answer") if protocol is not None else None
    limit = limit_line(answer, label, higher_is_better(study))
    if limit:
        lines.append(limit)
    lines += [f"on a bound: NFE {r.nfe} best {r.on_bound}; the optimum may lie beyond it "
              "(search.expand_bounds=true widens it)" for r in rows if r.on_bound]
    unsure = [r.nfe for r in rows if r.significant is False]
    if unsure:
        lines.append(f"not significant: the 95% interval of the {label} change reaches zero at "
                     f"NFE {', '.join(map(str, unsure))}")
    lines += [f"reversed on {', '.join(map(label_of, r.reversed))}: NFE {r.nfe} (trial "
              f"{r.label or r.best_trial}) gains on {label} but is worse on "
              f"{', '.join(map(label_of, r.reversed))} (95% interval on the worse side)"
              for r in rows if r.reversed]
    return lines


def score(value: float | None) -> str:
    """A score with four significant digits, ``-`` when absent."""
    return "-" if value is None else f"{value:.4g}"


def reversed_on(row: SummaryRow | None) -> str:
    """The metrics a row's gain reverses on, ``-`` when none (or no row)."""
    return ", ".join(map(label_of, row.reversed)) if row and row.reversed else "-"


def run_compare(args: list[str]) -> int:
    """``compare A B``: the two sweeps' baseline and best score per NFE side by side.

    Each sweep's protocol is printed (metric, feature network, reference, images and seeds);
    ``B - A`` is given only where both scores were measured the same way.
    """
    words, flags, overrides = split(args)
    expect("compare", words, ["a", "b"], flags)
    opened = Opened(overrides)
    a, b = opened.sweep(words[0]), opened.sweep(words[1])
    pairs, ma, mb = side_by_side(a, b)
    same = metric_name(a) == metric_name(b)
    what = (metric_label(a) if same
            else f"A on {metric_label(a)}, B on {metric_label(b)}")
    table = Table(title=f"{a.study_name} (A) vs {b.study_name} (B): {what} per NFE "
                        "(confirmed where recorded)")
    for col in ("NFE", "best A", "best B", "B - A [95% CI]", "baseline A", "baseline B",
                "change A [95% CI]", "change B [95% CI]", "reversed on A", "reversed on B"):
        table.add_column(col, justify="right", no_wrap=True)
    apart: set[str] = set()
    for pair in pairs:
        ra, rb = pair.a, pair.b
        if pair.why and ra and rb:
            apart.add(pair.why)
        table.add_row(str(pair.nfe), score(ra and ra.best_score), score(rb and rb.best_score),
                      difference_text(pair),
                      score(ra and ra.baseline_score), score(rb and rb.baseline_score),
                      fmt_delta(ra) if ra else "-", fmt_delta(rb) if rb else "-",
                      reversed_on(ra), reversed_on(rb))
    out = console()
    out.print(table)
    for name, m in (("A", ma), ("B", mb)):
        out.print(f"{name}: {m['label']} ({m['metric']}) of {m['features']} against "
                  f"{m['reference']}; " + "; ".join(
                      f"{what} on {n} images from seed {s}"
                      for what, (n, s) in (("confirmed", m["final"]), ("searched", m["search"]))
                      if n is not None))
    if not same:
        out.print(f"A searched {metric_label(a)} and B {metric_label(b)}: their scores are not "
                  "comparable, so B - A is left out")
    for why in sorted(apart - {"the metrics differ"}):
        out.print(f"B - A is left out where {why}: scores measured apart do not compare")
    return 0


TOOLS: dict[str, Callable[[list[str]], int]] = {
    "studies": run_studies, "show": run_show, "compare": run_compare}


def run_tool(command: str, args: list[str]) -> int:
    """Run ``studies``, ``show`` or ``compare``; bad input is one line and exit code 2."""
    if any(a in ("-h", "--help") for a in args):
        from . import USAGE

        print(USAGE)
        return 0
    code = 0

    def call() -> None:
        nonlocal code
        code = TOOLS[command](args)

    try:
        return guarded(call) or code
    except UsageError as err:
        return fail(str(err))
    except (HydraException, OmegaConfBaseException) as err:
        return fail(describe(err))


# --- ``--study NAME`` for export, report and dashboard -------------------------------------

def pop_study(args: list[str]) -> tuple[str | None, list[str]]:
    """The value of ``--study NAME`` (or ``--study=NAME``) and the other arguments."""
    name, rest = None, []
    values = iter(args)
    for arg in values:
        if arg == STUDY_FLAG:
            name = next(values, None)
            if name is None or name.startswith("-") or "=" in name:
                raise UsageError("--study needs a study name: --study NAME "
                                 f"({LIST_HINT})")
        elif arg.startswith(f"{STUDY_FLAG}="):
            name = arg.removeprefix(f"{STUDY_FLAG}=")
            if not name:
                raise UsageError(f"--study needs a study name: --study NAME ({LIST_HINT})")
        else:
            rest.append(arg)
    return name, rest


def given_keys(overrides: list[str]) -> set[str]:
    """The keys the command line sets itself (``+``/``++``/``~`` prefixes dropped)."""
    return {arg.split("=", 1)[0].lstrip("+~") for arg in overrides if "=" in arg}


def provenance_overrides(command: str, study: Sweep, cfg: DictConfig,
                         given: set[str]) -> list[str]:
    """The keys the sweep fixed, from its own record, for those the user did not give.

    Export and report: the search's sample count and first seed, and the final-score
    protocol the sweep confirmed under. Report with sample grids: the model's config group.
    """
    if command == "dashboard":
        return []
    attrs = study_attrs(study)
    fill: dict[str, object] = {}
    for key in (keys.SEARCH_N, keys.SEARCH_START):  # the same names as metric's keys
        if key in attrs:
            fill[f"metric.{key}"] = attrs[key]
    protocol, _ = final_scores(study)
    final_keys = ("metric.final_samples", "metric.final_seed_start", "metric.fid_infinity")
    if protocol is not None and not given & set(final_keys):
        fill.update(zip(final_keys, (protocol.seed_range.count, protocol.seed_range.start,
                                     str(protocol.fid_infinity).lower()), strict=True))
    out = [f"{k}={v}" for k, v in fill.items() if k not in given]
    if command == "report" and int(cfg.report.grid) > 0 and not given & {"model", "sweeps"}:
        out += model_override(study, given)
    return out


def model_override(study: Sweep, given: set[str]) -> list[str]:
    """``model=NAME`` when conf/model has the sweep's model and it needs no file; else why not."""
    attrs = study_attrs(study)
    name, sha = attrs.get(keys.MODEL_NAME), str(attrs.get(keys.MODEL_SHA256, ""))[:12]
    fix = "give the sweep's model overrides, or report.grid=0 to skip the sample grids"
    if name is None or not (CONF_DIR / "model" / f"{name}.yaml").is_file():
        raise ConfigError("--study", study.study_name,
                          f"the sweep was run with model {name}, which has no config in "
                          f"conf/model; {fix}")
    group = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    missing = sorted(k for k in OmegaConf.missing_keys(group) if f"model.{k}" not in given)
    if missing:
        raise ConfigError("--study", study.study_name,
                          f"the sweep's record names model {name} (weights sha256 {sha}) but "
                          f"not its {', '.join(f'model.{k}' for k in missing)}; {fix}")
    return [f"model={name}"]


def with_study(command: str, args: list[str]) -> list[str]:
    """``args`` with ``--study NAME`` replaced by ``search.study_name=NAME`` and the keys
    the sweep's provenance fixes (``provenance_overrides``); the sweep must exist."""
    name, rest = pop_study(args)
    if name is None:
        return args
    overrides = [a for a in rest if "=" in a and not a.startswith("-")]
    if any(a in MULTIRUN_FLAGS for a in rest):  # its storage and study: the first job's
        overrides = multirun_jobs(overrides)[0]
    given = given_keys(overrides)
    if "search.study_name" in given:
        raise UsageError("give the study once: --study NAME or search.study_name=NAME")
    opened = Opened(overrides)
    cfg, study = opened.cfg, opened.sweep(name)
    return [*rest, f"search.study_name={name}",
            *provenance_overrides(command, study, cfg, given)]


def study_args(command: str, args: list[str]) -> tuple[list[str], int]:
    """``with_study`` for the command line: the new arguments, or an error's exit code."""
    try:
        return with_study(command, args), 0
    except (UsageError, ConfigError) as err:
        return args, fail(str(err))
    except (HydraException, OmegaConfBaseException) as err:
        return args, fail(describe(err))
