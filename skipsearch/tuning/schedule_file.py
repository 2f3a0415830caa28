"""The schedule file's format, read side: load an exported schedule, check it, match a model.

Writing it from a study is ``export``'s job; reading needs neither Optuna nor torch, so a bad
file is one line before either loads (``sample``, ``inspect``, ``skipsearch.apply``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..configuration.errors import ConfigError
from ..configuration.keys import is_number
from ..execution.seed_range import SEED_LIMIT
from ..samplers.discretization import positive_levels
from ..samplers.names import (
    MAX_STEPS,
    SAMPLER_NAMES,
    SAMPLER_OPTIONS,
    SIGMA_LIMIT,
    UNBOUNDED_OPTIONS,
    UNIPC_ORDERS,
)
from ..samplers.spec import SamplerSpec
from .schedule import (
    PARAMETERIZATIONS,
    PROFILES,
    SkipSchedule,
    coefficient_problem,
    freeu_problem,
    guidance_problem,
)

FORMAT = "skipsearch-schedule/2"  # what export writes: every metric the confirmation scored
FORMATS = ("skipsearch-schedule/1", FORMAT)  # what readers take (/1: one FID, score.fid)


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

    @property
    def value(self) -> float | None:
        """The search metric's exported score (``score.fid`` in files of format /1)."""
        return self.score.get("value", self.score.get("fid"))

    @property
    def metric(self) -> str:
        """The registered name of the exported score's metric (files /1: an FID)."""
        name = str(self.score.get("metric", "fid"))
        if name == "fid" and str(self.score.get("feature_extractor", "")).startswith("digits"):
            return "digits_fid"  # format /1 named every Frechet distance fid
        return name


# The keys of an exported schedule, by the section a reader needs: ``sample`` reads all three
# (and reproduces the score), ``inspect`` the model; ``apply`` only the schedule itself.
REQUIRED_KEYS = {
    "model": ("model.name", "model.sha256"),
    "sampler": ("sampler.name", "sampler.steps", "sampler.sigma_min", "sampler.sigma_max",
                "sampler.rho"),
    "score": ("score.value", "score.n_samples", "score.seeds.start", "score.seeds.stop"),
}
# Where format /1 kept what /2 renamed
OLD_KEYS = {"score.value": "score.fid"}


class DuplicateKeyError(ValueError):
    """A YAML mapping names one key twice (PyYAML would keep the last silently)."""


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """The mapping of ``node``; DuplicateKeyError naming the key and its two lines."""
        lines: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merged keys may be overridden: that is what a merge is for
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:
                continue  # an unhashable key: the base constructor says so
            if first is not None:
                raise DuplicateKeyError(f"the key {key!r} appears twice, on line {first} and "
                                        f"on line {line}")
            lines[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> object:
    """Parse ``text`` as YAML (safe tags only); a key given twice in a mapping is an error."""
    return yaml.load(text, Loader=StrictLoader)


def lookup(data: Mapping, dotted: str) -> object:
    """The value at ``dotted`` in nested mappings; KeyError naming the first missing part."""
    value: object = data
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(".".join(dotted.split(".")[: i + 1]))
        value = value[part]
    return value


def integer_problem(key: str, value: object, low: int, high: int | None = None) -> str | None:
    """Unless ``value`` is an integer in [low, high] (no upper bound if None): what is wrong."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value and (
            high is None or value <= high):
        return None
    wanted = f">= {low}" if high is None else f"from {low} to {high}"
    return f"{key} is {value!r}; it must be an integer {wanted}"


def finite_problem(key: str, value: object, above: float | None = None) -> str | None:
    """Unless ``value`` is a finite number (> ``above`` if given): what is wrong with it."""
    if is_number(value) and math.isfinite(value) and (above is None or value > above):
        return None
    wanted = "a finite number" if above is None else f"a finite number > {above:g}"
    return f"{key} is {value!r}; it must be {wanted}"


def pair_problem(key: str, value: object, strict: bool) -> str | None:
    """Unless ``value`` is two finite numbers 0 <= a <= b (0 < a < b if ``strict``)."""
    if isinstance(value, list) and len(value) == 2 and all(
            is_number(v) and math.isfinite(v) for v in value):
        a, b = value
        if (0 < a < b) if strict else (0 <= a <= b):
            return None
    order = "0 < a < b" if strict else "0 <= a <= b"
    return f"{key} is {value!r}; it must be [a, b], finite numbers with {order}"


def sections_problem(data: Mapping, sections: Sequence[str]) -> str | None:
    """Why a section is not a mapping or a key the reader needs is missing; None if fine."""
    for name in ("schedule", "model", "sampler", "score", "study"):
        value = data.get(name)
        if value is not None and not isinstance(value, Mapping):
            return f"{name} is {value!r}, not a mapping"
    old = data.get("format") == FORMATS[0]
    for key in ("schedule.coefficients", *(k for s in sections for k in REQUIRED_KEYS[s])):
        key = OLD_KEYS.get(key, key) if old else key
        try:
            lookup(data, key)
        except KeyError as err:
            return f"the key {err.args[0]} is missing"
    return None


def choice_problem(key: str, value: object, choices: Sequence[str]) -> str | None:
    """Unless ``value`` is one of ``choices``: what is wrong with it."""
    if isinstance(value, str) and value in choices:
        return None
    return f"{key} is {value!r}; it must be one of {', '.join(choices)}"


def schedule_problem(schedule: Mapping) -> str | None:
    """Why the ``schedule`` section is unusable (``SkipSchedule.from_dict`` reads it)."""
    coefficients = schedule["coefficients"]
    if not isinstance(coefficients, list):
        return f"schedule.coefficients is {coefficients!r}, not a list"
    return (coefficient_problem(coefficients)
            or choice_problem("schedule.parameterization",
                              schedule.get("parameterization", "per_skip"), PARAMETERIZATIONS)
            or params_problem(schedule.get("params", {}))
            or choice_problem("schedule.profile", schedule.get("profile", "constant"), PROFILES)
            or where_problem(schedule)
            or prefixed(guidance_problem(schedule.get("guidance_scale")))
            or prefixed(freeu_problem(schedule.get("freeu"))))


def prefixed(problem: str | None) -> str | None:
    """A schedule field's problem named as its key in the file."""
    return None if problem is None else f"schedule.{problem}"


def params_problem(params: object) -> str | None:
    """Unless ``params`` maps names to finite numbers: what is wrong with them."""
    if not isinstance(params, Mapping):
        return f"schedule.params is {params!r}, not a mapping"
    for name, value in params.items():
        problem = finite_problem(f"schedule.params.{name}", value)
        if problem is not None:
            return problem
    return None


def where_problem(schedule: Mapping) -> str | None:
    """Why the window or the profile's range is unusable; None if both are fine."""
    if schedule.get("window") is not None:
        problem = pair_problem("schedule.window", schedule["window"], strict=False)
        if problem is not None:
            return problem
    if "profile_range" not in schedule:
        return None
    return pair_problem("schedule.profile_range", schedule["profile_range"], strict=True)


def sampler_problem(sampler: Mapping) -> str | None:
    """Why the ``sampler`` section is unusable (``SamplerSpec.from_dict`` reads it)."""
    name = sampler["name"]
    if name not in SAMPLER_NAMES:
        return f"sampler.name is {name!r}; known samplers: {', '.join(SAMPLER_NAMES)}"
    problem = (integer_problem("sampler.steps", sampler["steps"], 1, MAX_STEPS)
               or finite_problem("sampler.sigma_min", sampler["sigma_min"], 0.0)
               or finite_problem("sampler.sigma_max", sampler["sigma_max"], 0.0)
               or finite_problem("sampler.rho", sampler["rho"], 0.0))
    if problem is None and not sampler["sigma_min"] < sampler["sigma_max"] <= SIGMA_LIMIT:
        problem = (f"sampler.sigma_min is {sampler['sigma_min']!r} and sampler.sigma_max "
                   f"{sampler['sigma_max']!r}; they must satisfy 0 < sigma_min < sigma_max "
                   f"<= {SIGMA_LIMIT:g}")
    return problem or options_problem(name, sampler.get("options")) or sigmas_problem(sampler)


def options_problem(name: str, options: object) -> str | None:
    """Why a sampler's ``options`` are not ones it takes, with numeric values; None if fine."""
    if options is None:
        return None
    if not isinstance(options, Mapping):
        return f"sampler.options is {options!r}, not a mapping"
    accepted = SAMPLER_OPTIONS[name]
    for option, value in options.items():
        key = f"sampler.options.{option}"
        if option not in accepted:
            return (f"sampler.options has {option!r}, which {name} does not take (it takes "
                    f"{', '.join(accepted) or 'no options'})")
        infinite_ok = option in UNBOUNDED_OPTIONS and value == math.inf
        if not (is_number(value) and value >= 0 and (math.isfinite(value) or infinite_ok)):
            return f"{key} is {value!r}; it must be a finite number >= 0"
        if option == "order" and value not in UNIPC_ORDERS:
            return f"{key} is {value!r}; UniPC is implemented for order 2 or 3"
    if name == "edm_stochastic" and options.get("S_min", 0) > options.get("S_max", math.inf):
        return (f"sampler.options.S_min is {options['S_min']!r}, above sampler.options.S_max "
                f"{options['S_max']!r}")
    return None


def sigmas_problem(sampler: Mapping) -> str | None:
    """Why listed noise levels are unusable (not decreasing, not positive, not one a step)."""
    sigmas = sampler.get("sigmas")
    if sigmas is None:
        return None
    if not isinstance(sigmas, list) or not all(is_number(v) for v in sigmas):
        return f"sampler.sigmas is {sigmas!r}; it must be a list of numbers or null"
    try:
        levels = positive_levels(sigmas)
    except ValueError as err:
        return f"sampler.sigmas: {err}"
    if len(levels) != sampler["steps"]:
        return (f"sampler.sigmas lists {len(levels)} noise levels and sampler.steps is "
                f"{sampler['steps']}; a step takes one level, so they must agree")
    return None


def model_problem(model: Mapping) -> str | None:
    """Why the ``model`` section is unusable: its name and weights hash must be strings."""
    for key in ("name", "sha256"):
        value = model[key]
        if not isinstance(value, str) or not value:
            return f"model.{key} is {value!r}; it must be a non-empty string"
    return None


def score_problem(score: Mapping) -> str | None:
    """Why the ``score`` section is unusable: a finite score, its image count and seeds."""
    seeds = score["seeds"]
    if not isinstance(seeds, Mapping):
        return f"score.seeds is {seeds!r}, not a mapping"
    key = "value" if "value" in score else "fid"
    problem = (finite_problem(f"score.{key}", score[key])
               or integer_problem("score.n_samples", score["n_samples"], 1)
               or integer_problem("score.seeds.start", seeds["start"], 0, SEED_LIMIT - 1))
    return problem or integer_problem("score.seeds.stop", seeds["stop"], seeds["start"] + 1,
                                      SEED_LIMIT)


SECTION_PROBLEMS: dict[str, Callable[[Mapping], str | None]] = {
    "model": model_problem, "sampler": sampler_problem, "score": score_problem}


def schedule_file_problem(data: object, sections: Sequence[str] = ()) -> str | None:
    """Why parsed YAML ``data`` is not a usable schedule file; None if it is.

    The format and the ``schedule`` section are always checked; ``sections`` (out of
    REQUIRED_KEYS) name what else the reader needs, each checked key by key: types, ranges,
    and the options its sampler takes.
    """
    if data is None:
        return "the file is empty"
    if not isinstance(data, Mapping) or data.get("format") not in FORMATS:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        return f"format is {found!r}, not {' or '.join(FORMATS)}"
    problem = sections_problem(data, sections) or schedule_problem(data["schedule"])
    for section in sections:
        problem = problem or SECTION_PROBLEMS[section](data[section])
    return problem


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
        data = read_yaml(path.read_text())
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
