"""The schedule file: write the best schedule per NFE with provenance, read it back.

Which trials are best is for ``search.results`` to say; this module owns the YAML format.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial

from .errors import ConfigError
from .samplers.spec import SamplerSpec
from .schedule import SkipSchedule, coefficient_problem
from .search import record as keys
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

FORMAT = "skipsearch-schedule/1"


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
    return paths


def check_fits(exported: ExportedSchedule, model, key: str = "schedule") -> None:
    """An exported schedule has one coefficient per skip of ``model`` and was found for it."""
    want, have = str(exported.model["sha256"]), str(model.sha256)
    problem = coefficient_problem(exported.schedule.coefficients, len(model.denoiser.skips))
    if problem is not None:
        raise ConfigError(key, str(exported.path),
                          f"{problem} (model {model.name}); the schedule was found for model "
                          f"{exported.model['name']} with weights sha256 {want[:12]}; select "
                          "that model's config and weights")
    if want != have:
        raise ConfigError("model", model.name,
                          f"{exported.path} was found for model {exported.model['name']} with "
                          f"weights sha256 {want[:12]}, but the weights given have sha256 "
                          f"{have[:12]}; select that model's weights (model.weights or "
                          "model.path)")


@dataclass(frozen=True)
class ExportedSchedule:
    """An exported schedule and its provenance, as read from YAML."""

    schedule: SkipSchedule
    sampler: Mapping
    model: Mapping
    score: Mapping
    study: Mapping
    path: Path


# The keys of an exported schedule, by the section a reader needs: ``sample`` reads all three
# (and reproduces the score), ``inspect`` the model; ``apply`` only the schedule itself.
REQUIRED_KEYS = {
    "model": ("model.name", "model.sha256"),
    "sampler": ("sampler.name", "sampler.steps", "sampler.sigma_min", "sampler.sigma_max",
                "sampler.rho"),
    "score": ("score.fid", "score.n_samples", "score.seeds.start", "score.seeds.stop"),
}


def lookup(data: Mapping, dotted: str) -> object:
    """The value at ``dotted`` in nested mappings; KeyError naming the first missing part."""
    value: object = data
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(".".join(dotted.split(".")[: i + 1]))
        value = value[part]
    return value


def schedule_file_problem(data: object, sections: Sequence[str] = ()) -> str | None:
    """Why parsed YAML ``data`` is not a usable schedule file; None if it is.

    The format and the coefficients are always checked; ``sections`` (out of REQUIRED_KEYS)
    name what else the reader needs.
    """
    from .samplers import SAMPLERS

    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        return f"format is {found!r}, not {FORMAT}"
    for key in ("schedule.coefficients", *(k for s in sections for k in REQUIRED_KEYS[s])):
        try:
            lookup(data, key)
        except KeyError as err:
            return f"the key {err.args[0]} is missing"
    checks = []
    if "sampler" in sections:
        name = data["sampler"]["name"]
        if name not in SAMPLERS:
            return f"sampler.name is {name!r}; known samplers: {', '.join(SAMPLERS)}"
        checks.append(("sampler.steps", data["sampler"]["steps"], 1))
    if "score" in sections:
        seeds = data["score"]["seeds"]
        checks += [("score.seeds.start", seeds["start"], 0),
                   ("score.seeds.stop", seeds["stop"], int(seeds["start"]) + 1)]
    for key, value, low in checks:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            return f"{key} is {value!r}; it must be an integer >= {low}"
    coefficients = data["schedule"]["coefficients"]
    if not isinstance(coefficients, list):
        return f"schedule.coefficients is {coefficients!r}, not a list"
    return coefficient_problem(coefficients)


def load_schedule(path: str | Path, key: str = "schedule",
                  sections: Sequence[str] = ()) -> ExportedSchedule:
    """Read an exported schedule file; ConfigError naming ``key`` if it is missing or malformed.

    Checked on the way in: the format, coefficients that are finite numbers in ``RHO_RANGE``
    (``coefficient_problem``) and the keys of ``sections`` ("model", "sampler", "score").
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file; give a YAML written by skipsearch export")
    try:
        data = yaml.safe_load(path.read_text())
        problem = schedule_file_problem(data, sections)
        if problem is not None:
            raise ValueError(problem)
        schedule = SkipSchedule.from_dict(data["schedule"])
        if "sampler" in sections:
            SamplerSpec.from_dict(data["sampler"], data["sampler"]["steps"])
        return ExportedSchedule(schedule, *(data.get(k) or {} for k in
                                            ("sampler", "model", "score", "study")), path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError,
            ValueError) as err:
        raise ConfigError(key, str(path), f"not a usable skipsearch schedule file ({err}); "
                          "give a YAML written by skipsearch export") from None
