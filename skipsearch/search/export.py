"""Export: the best schedule per NFE of a study written as schedule files, with provenance.

Which trials are best is for ``search.results`` to say; the file's format and its reading are
``schedule_file``'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial

from ..configuration.errors import ConfigError
from ..configuration.urls import safe_url
from ..execution.seed_range import SeedRange
from ..tuning.schedule_file import FORMAT
from . import record as keys
from .group import Sweep
from .record import TrialRecord, search_seeds, set_study_attr, study_attrs
from .results import (
    baseline_per_nfe,
    best_per_nfe,
    cell_of,
    final_infinity,
    final_seeds,
    final_value,
    higher_is_better,
    metric_name,
    pareto_front,
    ranking,
    search_score,
    trial_steps,
)

log = logging.getLogger(__name__)


def trial_record(study: optuna.Study, trial: FrozenTrial, baseline: FrozenTrial | None,
                 storage_url: str, scores: Mapping[int, Mapping] | None = None) -> dict:
    """Everything needed to reuse and to reproduce one trial's schedule.

    ``score`` holds the search metric's confirmed final score when there is one
    (``confirmed: true``), with the search's under ``score.search`` and every other metric
    the confirmation scored under ``score.metrics`` (score, change, interval, ``worse``);
    ``sample`` with the file reproduces ``score.value``.
    """
    attrs = study_attrs(study)
    record = TrialRecord.of(trial)
    schedule = dict(record.schedule)
    coefficients = schedule["coefficients"]
    skips = [{**s, "rho": c} for s, c in zip(attrs[keys.SKIPS], coefficients, strict=True)]
    search = {"value": search_score(trial),
              "baseline": search_score(baseline) if baseline is not None else None,
              "n_samples": record.n_samples,
              "seeds": seeds_entry(search_seeds(attrs, record.n_samples))}
    final = (scores or {}).get(trial.number)
    score = dict(search)
    if final is not None:
        base = (scores or {}).get(baseline.number) if baseline is not None else None
        score = {"value": final_value(final), "baseline": final_value(base) if base else None,
                 "score_infinity": final_infinity(final), "n_samples": final["n_samples"],
                 "seeds": seeds_entry(final_seeds(final)),
                 "confirmed": True, "search": search}
        if "delta" in final:
            low, high = final["delta_ci95"]
            better = low > 0 if higher_is_better(study) else high < 0
            score.update(delta=final["delta"], delta_ci95=[low, high], significant=better,
                         delta_blocks=final.get("delta_blocks"))
        others = other_metrics(final, base, metric_name(study))
        if others:
            score.update(metrics=others, reversed=list(final.get("reversed", [])))
    provenance = dict(attrs[keys.METRIC])
    sampler = record.sampler or attrs[keys.SAMPLER]
    return {
        "format": FORMAT,
        "skipsearch_version": attrs[keys.VERSION],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": attrs[keys.MODEL_NAME], "sha256": attrs[keys.MODEL_SHA256]},
        "sampler": {**sampler, "steps": trial_steps(trial), "nfe": record.nfe},
        "schedule": {**schedule, "skips": skips},
        "score": {"metric": metric_name(study), **score,
                  **{k: v for k, v in provenance.items() if k != "metric"}},
        **({"precision": attrs[keys.PRECISION]} if keys.PRECISION in attrs else {}),
        "study": {"name": study.study_name, "storage": safe_url(storage_url),
                  "trial": trial.number, **cell_of(study, trial),
                  "is_baseline": bool(record.baseline)},
    }


def other_metrics(final: Mapping, base: Mapping | None, primary: str) -> dict:
    """Each confirm metric of a final-score record: score, baseline's, change, interval."""
    out = {}
    for name, m in (final.get("metrics") or {}).items():
        if name == primary:
            continue
        entry = {"value": m["score"],
                 "baseline": ((base or {}).get("metrics") or {}).get(name, {}).get("score"),
                 "higher_is_better": bool(m.get("higher_is_better"))}
        if "delta" in m:
            entry.update(delta=m["delta"], delta_ci95=list(m["delta_ci95"]),
                         worse=bool(m.get("worse")))
        if m.get("parts"):
            entry["parts"] = dict(m["parts"])
        out[name] = entry
    return out


def seeds_entry(seeds: SeedRange) -> dict:
    """A score's seeds as the file records them, with how each image's class follows."""
    return {**seeds.to_dict(), "class_label": "seed % label_dim"}


def write_yaml(path: Path, data: Mapping) -> Path:
    """Write ``data`` as YAML atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: workers race
    try:
        tmp.write_text(yaml.safe_dump(dict(data), sort_keys=False))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write (disk full): no stray file
    return path


def export_best(study: optuna.Study, export_dir: Path, storage_url: str,
                scores: Mapping[int, Mapping] | None = None,
                on_reversal: str = "drop") -> list[Path]:
    """Write ``nfeXXX.yaml`` per NFE, ``best.yaml`` overall and ``pareto.yaml`` (the front).

    A confirmed improvement whose 95% interval reaches zero (``score.significant: false``)
    keeps its ``nfeXXX.yaml`` but is never ``best.yaml``: its baseline competes instead. So
    does one whose gain reverses on a confirm metric (``score.reversed``), unless
    ``on_reversal`` is ``keep``. The folder is recorded in the sweep (``exports``), for
    ``skipsearch show`` to find.
    """
    best = best_per_nfe(study, scores)
    if not best:
        raise ConfigError("search.study_name", study.study_name,
                          "the study has no completed trial yet; run `skipsearch sweep` first")
    baselines = baseline_per_nfe(study, scores)
    folder = export_dir / study.study_name
    records = {nfe: trial_record(study, t, baselines.get(nfe), storage_url, scores)
               for nfe, t in best.items()}
    paths = [write_yaml(folder / f"nfe{nfe:03d}.yaml", r) for nfe, r in records.items()]
    sure = {nfe: r for nfe, r in records.items() if eligible(r["score"], on_reversal)}
    for nfe in records.keys() - sure.keys():  # unsure or reversed: its baseline competes
        if nfe in baselines:
            sure[nfe] = trial_record(study, baselines[nfe], baselines[nfe], storage_url, scores)
    rank = ranking(study)
    if sure:
        overall = min(sure, key=lambda nfe: rank(sure[nfe]["score"]["value"]))
        paths.append(write_yaml(folder / "best.yaml", sure[overall]))
    else:
        (folder / "best.yaml").unlink(missing_ok=True)
    front = pareto_front({nfe: r["score"]["value"] for nfe, r in records.items()},
                         higher_is_better(study))
    paths.append(write_yaml(folder / "pareto.yaml", {
        "format": "skipsearch-pareto/2", "study": study.study_name,
        "objectives": [metric_name(study), "nfe"],
        "front": [{"nfe": nfe, "value": records[nfe]["score"]["value"],
                   "baseline": records[nfe]["score"]["baseline"],
                   "confirmed": bool(records[nfe]["score"].get("confirmed")),
                   "trial": records[nfe]["study"]["trial"], "file": f"nfe{nfe:03d}.yaml"}
                  for nfe in front]}))
    record_folder(study, folder)
    return paths


def eligible(score: Mapping, on_reversal: str) -> bool:
    """Whether an exported score may be ``best.yaml``: a sure gain, not reversed (``drop``)."""
    if score.get("significant") is False:
        return False
    return on_reversal == "keep" or not score.get("reversed")


def record_folder(study: Sweep, folder: Path) -> None:
    """Note ``folder`` in every cell of the sweep; a storage that refuses writes keeps none."""
    try:
        for cell in study.cells:
            set_study_attr(cell, keys.EXPORTS, str(folder.resolve()))
    except (optuna.exceptions.StorageInternalError, OSError) as err:  # a read-only database
        log.warning("the export folder is not recorded in the study (%s)", err)
