"""A sampler as a run names it: solver, step count, options and discretization (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads when the levels are asked for, not when a spec is built
    import torch


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
