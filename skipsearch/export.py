"""Export the best schedule per NFE with provenance, and load it back (``load_schedule``)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigError
from .schedule import SkipSchedule
from .search.confirm import search_fid
from .search.group import Sweep, trial_steps

FORMAT = "skipsearch-schedule/1"


def best_per_nfe(study: optuna.Study,
                 scores: Mapping[int, Mapping] | None = None) -> dict[int, FrozenTrial]:
    """The completed trial with the lowest FID at each NFE.

    With ``scores`` (confirmed final scores by trial number) only those trials compete, ranked
    by their final FID; an NFE without any falls back to the search FID.
    """
    by_search: dict[int, FrozenTrial] = {}
    by_final: dict[int, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        nfe = t.user_attrs["nfe"]
        if nfe not in by_search or search_fid(t) < search_fid(by_search[nfe]):
            by_search[nfe] = t
        if scores and t.number in scores and (
                nfe not in by_final
                or scores[t.number]["fid"] < scores[by_final[nfe].number]["fid"]):
            by_final[nfe] = t
    return dict(sorted({**by_search, **by_final}.items()))


def baseline_per_nfe(study: optuna.Study,
                     scores: Mapping[int, Mapping] | None = None) -> dict[int, FrozenTrial]:
    """The completed baseline (all coefficients 1.0) trial at each NFE (the best, if several)."""
    baselines = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.user_attrs.get("baseline")]
    best: dict[int, FrozenTrial] = {}
    for t in sorted(baselines, key=lambda t: final_or_search(t, scores), reverse=True):
        best[t.user_attrs["nfe"]] = t
    return best


def final_or_search(trial: FrozenTrial, scores: Mapping[int, Mapping] | None) -> float:
    """The trial's confirmed FID if it has one, else its search FID."""
    if scores and trial.number in scores:
        return scores[trial.number]["fid"]
    return search_fid(trial)


def pareto_front(fids: Mapping[int, float]) -> list[int]:
    """The NFEs whose FID is lower than the FID at every smaller NFE (minimising both)."""
    front, best = [], float("inf")
    for nfe in sorted(fids):
        if fids[nfe] < best:
            front.append(nfe)
            best = fids[nfe]
    return front


def safe_url(url: str) -> str:
    """A storage URL with any password replaced by ***."""
    from sqlalchemy.engine import make_url

    if url.startswith("journal:///"):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


def trial_record(study: optuna.Study, trial: FrozenTrial, baseline: FrozenTrial | None,
                 storage_url: str, scores: Mapping[int, Mapping] | None = None) -> dict:
    """Everything needed to reuse and to reproduce one trial's schedule.

    ``score`` holds the confirmed final score when there is one (``confirmed: true``), with the
    search's score under ``score.search``; ``sample`` with the file reproduces ``score.fid``.
    """
    attrs = study.user_attrs
    schedule = dict(trial.user_attrs["schedule"])
    coefficients = schedule["coefficients"]
    skips = [{**s, "rho": c} for s, c in zip(attrs["skips"], coefficients, strict=True)]
    search_n = trial.user_attrs["n_samples"]
    search = {"fid": search_fid(trial),
              "baseline_fid": search_fid(baseline) if baseline is not None else None,
              "n_samples": search_n,
              "seeds": {"start": attrs["seed_start"], "stop": attrs["seed_start"] + search_n,
                        "class_label": "seed % label_dim"}}
    final = (scores or {}).get(trial.number)
    score = dict(search)
    if final is not None:
        base = (scores or {}).get(baseline.number) if baseline is not None else None
        start = final["seed_start"]
        score = {"fid": final["fid"], "baseline_fid": base["fid"] if base else None,
                 "fid_infinity": final.get("fid_infinity"), "n_samples": final["n_samples"],
                 "seeds": {"start": start, "stop": start + final["n_samples"],
                           "class_label": "seed % label_dim"},
                 "confirmed": True, "search": search}
        if "delta" in final:
            low, high = final["delta_ci95"]
            score.update(delta=final["delta"], delta_ci95=[low, high], significant=high < 0,
                         delta_blocks=final.get("delta_blocks"))
    sampler = trial.user_attrs.get("sampler") or attrs["sampler"]
    return {
        "format": FORMAT,
        "skipsearch_version": attrs["skipsearch_version"],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": attrs["model_name"], "sha256": attrs["model_sha256"]},
        "sampler": {**sampler, "steps": trial_steps(trial), "nfe": trial.user_attrs["nfe"]},
        "schedule": {**schedule, "skips": skips},
        "score": {**score, **attrs["metric"]},
        **({"precision": attrs["precision"]} if "precision" in attrs else {}),
        "study": {"name": study.study_name, "storage": safe_url(storage_url),
                  "trial": trial.number, **cell_of(study, trial),
                  "is_baseline": bool(trial.user_attrs.get("baseline"))},
    }


def cell_of(study, trial: FrozenTrial) -> dict:
    """The cell study holding a sweep's trial and the trial's number there (none for a study)."""
    if not isinstance(study, Sweep):
        return {}
    return {"cell": study.cell_of(trial.number).study_name,
            "cell_trial": study.where(trial.number).number}


def write_yaml(path: Path, data: Mapping) -> Path:
    """Write ``data`` as YAML atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per process: workers race
    tmp.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    tmp.replace(path)
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


@dataclass(frozen=True)
class ExportedSchedule:
    """An exported schedule and its provenance, as read from YAML."""

    schedule: SkipSchedule
    sampler: Mapping
    model: Mapping
    score: Mapping
    study: Mapping
    path: Path


def load_schedule(path: str | Path, key: str = "schedule") -> ExportedSchedule:
    """Read an exported schedule file; ConfigError naming ``key`` if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file; give a YAML written by skipsearch export")
    try:
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        schedule = SkipSchedule.from_dict(data["schedule"])
        return ExportedSchedule(schedule, data["sampler"], data["model"], data["score"],
                                data["study"], path)
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(key, str(path), f"not a skipsearch schedule file ({err})") from None
