"""The sampler registry: each name's solver, its exact NFE and the options it takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .dpmpp import dpmpp_2m_nfe, sample_dpmpp_2m
from .edm_stochastic import edm_stochastic_nfe, sample_edm_stochastic
from .euler import euler_nfe, sample_euler
from .heun import heun_nfe, sample_heun
from .names import SAMPLER_OPTIONS
from .unipc import sample_unipc, unipc_nfe


@dataclass(frozen=True)
class SamplerDef:
    """A sampler: its solver, its exact NFE as a function of steps, the options it takes.

    ``rounds_levels``: the solver raises noise levels itself (churn) and takes the network's
    ``round_sigma`` to keep them on the levels the network supports.
    """

    solve: Callable[..., torch.Tensor]
    nfe: Callable[[int], int]
    options: tuple[str, ...] = ()
    rounds_levels: bool = False


# Keyed and optioned by names.SAMPLER_OPTIONS, the one list of samplers and their options.
SAMPLERS: dict[str, SamplerDef] = {
    "euler": SamplerDef(sample_euler, euler_nfe),
    "heun": SamplerDef(sample_heun, heun_nfe),
    "edm_stochastic": SamplerDef(sample_edm_stochastic, edm_stochastic_nfe,
                                 SAMPLER_OPTIONS["edm_stochastic"], rounds_levels=True),
    "dpmpp_2m": SamplerDef(sample_dpmpp_2m, dpmpp_2m_nfe),
    "unipc": SamplerDef(sample_unipc, unipc_nfe, SAMPLER_OPTIONS["unipc"]),
}


def sampler_def(sampler: str) -> SamplerDef:
    """The registered sampler called ``sampler``; ValueError naming the choices otherwise."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[sampler]


def nfe_of(sampler: str, steps: int) -> int:
    """Exact network evaluations of ``sampler`` with ``steps`` steps."""
    return sampler_def(sampler).nfe(steps)
