"""The schedule file's format, read side: load an exported schedule, check it, match a model.

Writing it from a study is ``export``'s job; reading needs neither Optuna nor torch, so a bad
file is one line before either loads (``sample``, ``inspect``, ``skipsearch.apply``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ConfigError
from .samplers.names import SAMPLER_NAMES
from .samplers.spec import SamplerSpec
from .schedule import SkipSchedule, coefficient_problem

FORMAT = "skipsearch-schedule/1"


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
    if data is None:
        return "the file is empty"
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
        if name not in SAMPLER_NAMES:
            return f"sampler.name is {name!r}; known samplers: {', '.join(SAMPLER_NAMES)}"
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
    if path.is_dir():
        raise ConfigError(key, str(path), "is a folder; give one of its YAML files written by "
                          "skipsearch export (best.yaml, nfeXXX.yaml)")
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
