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

from .errors import ConfigError
from .schedule_file import FORMAT
from .search import record as keys
from .search.group import Sweep
from .search.record import TrialRecord, search_seeds
from .search.results import (
    baseline_per_nfe,
    best_per_nfe,
    cell_of,
    final_seeds,
    pareto_front,
    search_fid,
    trial_steps,
)
from .seed_range import SeedRange
from .urls import safe_url

log = logging.getLogger(__name__)


def trial_record(study: optuna.Study, trial: FrozenTrial, baseline: FrozenTrial | None,
                 storage_url: str, scores: Mapping[int, Mapping] | None = None) -> dict:
    """Everything needed to reuse and to reproduce one trial's schedule.

    ``score`` holds the confirmed final score when there is one (``confirmed: true``), with the
    search's score under ``score.search``; ``sample`` with the file reproduces ``score.fid``.
    """
    attrs = study.user_attrs
    record = TrialRecord.of(trial)
    schedule = dict(record.schedule)
    coefficients = schedule["coefficients"]
    skips = [{**s, "rho": c} for s, c in zip(attrs[keys.SKIPS], coefficients, strict=True)]
    search = {"fid": search_fid(trial),
              "baseline_fid": search_fid(baseline) if baseline is not None else None,
              "n_samples": record.n_samples,
              "seeds": seeds_entry(search_seeds(attrs, record.n_samples))}
    final = (scores or {}).get(trial.number)
    score = dict(search)
    if final is not None:
        base = (scores or {}).get(baseline.number) if baseline is not None else None
        score = {"fid": final["fid"], "baseline_fid": base["fid"] if base else None,
                 "fid_infinity": final.get("fid_infinity"), "n_samples": final["n_samples"],
                 "seeds": seeds_entry(final_seeds(final)),
                 "confirmed": True, "search": search}
        if "delta" in final:
            low, high = final["delta_ci95"]
            score.update(delta=final["delta"], delta_ci95=[low, high], significant=high < 0,
                         delta_blocks=final.get("delta_blocks"))
    sampler = record.sampler or attrs[keys.SAMPLER]
    return {
        "format": FORMAT,
        "skipsearch_version": attrs[keys.VERSION],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": attrs[keys.MODEL_NAME], "sha256": attrs[keys.MODEL_SHA256]},
        "sampler": {**sampler, "steps": trial_steps(trial), "nfe": record.nfe},
        "schedule": {**schedule, "skips": skips},
        "score": {**score, **attrs[keys.METRIC]},
        **({"precision": attrs[keys.PRECISION]} if keys.PRECISION in attrs else {}),
        "study": {"name": study.study_name, "storage": safe_url(storage_url),
                  "trial": trial.number, **cell_of(study, trial),
                  "is_baseline": bool(record.baseline)},
    }


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
                scores: Mapping[int, Mapping] | None = None) -> list[Path]:
    """Write ``nfeXXX.yaml`` per NFE, ``best.yaml`` overall and ``pareto.yaml`` (the front).

    A confirmed improvement whose 95% interval reaches zero (``score.significant: false``)
    keeps its ``nfeXXX.yaml`` but is never ``best.yaml``: its baseline competes instead.
    The folder is recorded in the sweep (``exports``), for ``skipsearch show`` to find.
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
    sure = {nfe: r for nfe, r in records.items() if r["score"].get("significant") is not False}
    for nfe in records.keys() - sure.keys():  # an unsure improvement: its baseline competes
        if nfe in baselines:
            sure[nfe] = trial_record(study, baselines[nfe], baselines[nfe], storage_url, scores)
    if sure:
        overall = min(sure, key=lambda nfe: sure[nfe]["score"]["fid"])
        paths.append(write_yaml(folder / "best.yaml", sure[overall]))
    else:
        (folder / "best.yaml").unlink(missing_ok=True)
    front = pareto_front({nfe: r["score"]["fid"] for nfe, r in records.items()})
    paths.append(write_yaml(folder / "pareto.yaml", {
        "format": "skipsearch-pareto/1", "study": study.study_name,
        "objectives": ["fid", "nfe"],
        "front": [{"nfe": nfe, "fid": records[nfe]["score"]["fid"],
                   "baseline_fid": records[nfe]["score"]["baseline_fid"],
                   "confirmed": bool(records[nfe]["score"].get("confirmed")),
                   "trial": records[nfe]["study"]["trial"], "file": f"nfe{nfe:03d}.yaml"}
                  for nfe in front]}))
    record_folder(study, folder)
    return paths


def record_folder(study: Sweep, folder: Path) -> None:
    """Note ``folder`` in every cell of the sweep; a storage that refuses writes keeps none."""
    try:
        for cell in study.cells:
            cell.set_user_attr(keys.EXPORTS, str(folder.resolve()))
    except (optuna.exceptions.StorageInternalError, OSError) as err:  # a read-only database
        log.warning("the export folder is not recorded in the study (%s)", err)
