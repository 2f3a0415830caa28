"""A sampler as a run names it: solver, step count, options and discretization (torch-free)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import ConfigError, check
from ..configuration.keys import get, get_choice, get_float, get_int, is_number
from ..configuration.paths import CONF_DIR
from .discretization import positive_levels
from .names import MAX_STEPS, SAMPLER_NAMES, SAMPLER_OPTIONS, SIGMA_LIMIT, UNBOUNDED_OPTIONS

if TYPE_CHECKING:  # torch loads when the levels are asked for, not when a spec is built
    import torch

log = logging.getLogger(__name__)

DISCRETIZATIONS = ("edm", "list")
# Keys another sampler of a sweep shares with the selected ``sampler`` group.
SHARED_KEYS = ("steps", "sigma_min", "sigma_max", "rho", "discretization", "sigmas")


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler, its options and its discretization (EDM's, or a given list of sigmas)."""

    name: str
    steps: int
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    options: Mapping[str, float] = field(default_factory=dict)
    sigma_list: tuple[float, ...] | None = None

    @property
    def nfe(self) -> int:
        """Exact network evaluations per image."""
        from .registry import nfe_of

        return nfe_of(self.name, self.steps)

    def sigmas(self) -> torch.Tensor:
        """The N + 1 noise levels, float64."""
        from .discretization import edm_sigmas, sigmas_from_list

        if self.sigma_list is not None:
            return sigmas_from_list(self.sigma_list)
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)

    def to_dict(self) -> dict:
        """Everything but the step count, YAML-friendly (the study records this)."""
        return {"name": self.name, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "rho": self.rho, "options": dict(self.options),
                "sigmas": list(self.sigma_list) if self.sigma_list is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping, steps: int) -> SamplerSpec:
        """Inverse of ``to_dict`` with the step count."""
        sigmas = data.get("sigmas")
        return cls(str(data["name"]), int(steps), float(data["sigma_min"]),
                   float(data["sigma_max"]), float(data["rho"]),
                   {k: float(v) for k, v in dict(data.get("options") or {}).items()},
                   tuple(float(v) for v in sigmas) if sigmas is not None else None)

    @classmethod
    def from_config(cls, cfg: DictConfig, steps: int | None = None) -> SamplerSpec:
        """The checked ``sampler`` group, with ``steps`` if given.

        With ``discretization: list`` the step count is the number of listed sigmas.
        """
        check_sampler_section(cfg)
        s = cfg.sampler
        options = {k: float(s[k]) for k in SAMPLER_OPTIONS[str(s.name)]}
        sigma_list = None
        if s.get("discretization", "edm") == "list":
            sigma_list = tuple(float(v) for v in s.sigmas if float(v) > 0)
            steps = len(sigma_list)
        return cls(str(s.name), int(steps if steps is not None else s.steps),
                   float(s.sigma_min), float(s.sigma_max), float(s.rho), options, sigma_list)


def check_sampler_section(cfg: DictConfig) -> None:
    """Sampler name, steps, discretization and the sampler's own options."""
    name = get_choice(cfg, "sampler.name", SAMPLER_NAMES)
    get_int(cfg, "sampler.steps", 1, MAX_STEPS)
    sigma_min = get_float(cfg, "sampler.sigma_min", 0.0, SIGMA_LIMIT)
    get_float(cfg, "sampler.sigma_max", sigma_min, SIGMA_LIMIT)
    get_float(cfg, "sampler.rho", 0.0, 1000.0)
    for option in SAMPLER_OPTIONS[name]:
        value = get(cfg, f"sampler.{option}")
        check(is_number(value) and value >= 0
              and (math.isfinite(value) or option in UNBOUNDED_OPTIONS), f"sampler.{option}",
              value, "must be a finite number >= 0")
    if name == "unipc":
        check(cfg.sampler.order in (2, 3), "sampler.order", cfg.sampler.order,
              "UniPC is implemented for order 2 or 3: sampler.order=2")
    if name == "edm_stochastic":
        check(cfg.sampler.S_min <= cfg.sampler.S_max, "sampler.S_min", cfg.sampler.S_min,
              f"must not exceed sampler.S_max={cfg.sampler.S_max}")
    if get_choice(cfg, "sampler.discretization", DISCRETIZATIONS) == "list":
        sigmas = OmegaConf.select(cfg, "sampler.sigmas")
        try:
            levels = positive_levels(list(sigmas or []))
            if not (levels[0] <= SIGMA_LIMIT and len(levels) <= MAX_STEPS):
                raise ValueError(f"at most {MAX_STEPS} levels, each at most {SIGMA_LIMIT:g}")
        except (ValueError, TypeError) as err:
            raise ConfigError("sampler.sigmas", sigmas and list(sigmas),
                              f"{err}; give e.g. sampler.sigmas=[80,10,1,0.1,0.002]") from None


def sampler_choices(cfg: DictConfig, base: SamplerSpec | None = None) -> dict[str, SamplerSpec]:
    """The samplers a sweep may pick (``search.samplers``, else the ``sampler`` group's).

    Another sampler takes its options from ``conf/sampler/<name>.yaml`` and the
    discretization of the selected ``sampler`` group, so the choice is only the solver.
    """
    base = base or SamplerSpec.from_config(cfg)
    names = OmegaConf.select(cfg, "search.samplers") or [base.name]
    choices = {}
    for name in names:
        if name == base.name:
            choices[name] = base
            continue
        group = OmegaConf.load(CONF_DIR / "sampler" / f"{name}.yaml")
        shared = {k: cfg.sampler[k] for k in SHARED_KEYS if k in cfg.sampler}
        choices[name] = SamplerSpec.from_config(
            OmegaConf.create({"sampler": {**group, **shared}}))
    return choices


def fit_to_network(spec: SamplerSpec, sigma_range: tuple[float, float] | None,
                   announce: bool = True) -> SamplerSpec:
    """``spec`` with its noise levels inside the network's trained ``sigma_range``.

    As EDM's generate.py: sigma_min = max(sigma_min, lowest), sigma_max = min(sigma_max,
    highest), the changes logged on one INFO line (unless ``announce`` is false). Listed
    sigmas are never moved: one outside the range is a ConfigError. ``None``: any level.
    """
    if sigma_range is None:
        return spec
    low, high = float(sigma_range[0]), float(sigma_range[1])
    trained = f"the network's trained range [{low!r}, {high!r}]"
    if spec.sigma_list is not None:
        outside = [s for s in spec.sigma_list if not low <= s <= high]
        if outside:
            raise ConfigError("sampler.sigmas", list(spec.sigma_list),
                              f"{', '.join(map(repr, outside))} "
                              f"{'is' if len(outside) == 1 else 'are'} outside {trained}; "
                              "list levels within it")
        return spec
    sigma_min, sigma_max = max(spec.sigma_min, low), min(spec.sigma_max, high)
    if sigma_min > sigma_max:
        key, value = (("sampler.sigma_max", spec.sigma_max) if spec.sigma_max < low
                      else ("sampler.sigma_min", spec.sigma_min))
        raise ConfigError(key, value, f"leaves no noise level inside {trained}")
    changes = [f"sampler.{key} {old:.6g} -> {new:.6g}"
               for key, old, new in (("sigma_min", spec.sigma_min, sigma_min),
                                     ("sigma_max", spec.sigma_max, sigma_max)) if new != old]
    if not changes:
        return spec
    if announce:
        log.info("%s (the network's trained range)", ", ".join(changes))
    return replace(spec, sigma_min=sigma_min, sigma_max=sigma_max)
