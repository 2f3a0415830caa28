"""Export the best schedule per NFE with provenance, and load it back (``load_schedule``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigError
from .schedule import SkipSchedule

FORMAT = "skipsearch-schedule/1"


def best_per_nfe(study: optuna.Study) -> dict[int, FrozenTrial]:
    """The completed trial with the lowest FID at each NFE."""
    best: dict[int, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        nfe = t.user_attrs["nfe"]
        if nfe not in best or t.value < best[nfe].value:
            best[nfe] = t
    return dict(sorted(best.items()))


def baseline_per_nfe(study: optuna.Study) -> dict[int, FrozenTrial]:
    """The completed baseline (all coefficients 1.0) trial at each NFE."""
    return {t.user_attrs["nfe"]: t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("baseline")}


def safe_url(url: str) -> str:
    """A storage URL with any password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


def trial_record(study: optuna.Study, trial: FrozenTrial, baseline: FrozenTrial | None,
                 storage_url: str) -> dict:
    """Everything needed to reuse and to reproduce one trial's schedule."""
    attrs = study.user_attrs
    schedule = dict(trial.user_attrs["schedule"])
    coefficients = schedule["coefficients"]
    skips = [{**s, "rho": c} for s, c in zip(attrs["skips"], coefficients, strict=True)]
    return {
        "format": FORMAT,
        "skipsearch_version": attrs["skipsearch_version"],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": attrs["model_name"], "sha256": attrs["model_sha256"]},
        "sampler": {**attrs["sampler"], "steps": trial.params["steps"],
                    "nfe": trial.user_attrs["nfe"]},
        "schedule": {**schedule, "skips": skips},
        "score": {"fid": trial.value,
                  "baseline_fid": baseline.value if baseline is not None else None,
                  "n_samples": trial.user_attrs["n_samples"],
                  "seeds": {"start": attrs["seed_start"],
                            "stop": attrs["seed_start"] + trial.user_attrs["n_samples"],
                            "class_label": "seed % label_dim"},
                  **attrs["metric"]},
        "study": {"name": study.study_name, "storage": safe_url(storage_url),
                  "trial": trial.number, "is_baseline": bool(trial.user_attrs.get("baseline"))},
    }


def write_yaml(path: Path, data: Mapping) -> Path:
    """Write ``data`` as YAML atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    tmp.replace(path)
    return path


def export_best(study: optuna.Study, export_dir: Path, storage_url: str) -> list[Path]:
    """Write ``nfeXXX.yaml`` for the best trial at each NFE, and ``best.yaml`` overall."""
    best = best_per_nfe(study)
    if not best:
        raise ConfigError("search.study_name", study.study_name,
                          "the study has no completed trial yet; run `skipsearch sweep` first")
    baselines = baseline_per_nfe(study)
    folder = export_dir / study.study_name
    paths = [write_yaml(folder / f"nfe{nfe:03d}.yaml",
                        trial_record(study, t, baselines.get(nfe), storage_url))
             for nfe, t in best.items()]
    overall = min(best.values(), key=lambda t: t.value)
    nfe = overall.user_attrs["nfe"]
    paths.append(write_yaml(folder / "best.yaml",
                            trial_record(study, overall, baselines.get(nfe), storage_url)))
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
