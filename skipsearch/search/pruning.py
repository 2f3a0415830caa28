"""Staged FID and pruning: trials report FID at growing sample counts; hopeless ones stop.

A study mixes step counts, and FID at 5 NFE is not comparable with FID at 11 NFE, so every
pruner here judges a trial only against trials at the same NFE (``PerNFEPruner``).
"""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial

from ..configuration.errors import ConfigError
from .names import PRUNERS
from .record import TrialRecord
from .settings import PrunerSettings


class _SameNFE:
    """The study as a pruner sees it, holding only the trials at one NFE."""

    def __init__(self, study: optuna.Study, nfe: int) -> None:
        self._study, self._nfe = study, nfe

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        """The study's trials at this NFE."""
        return [t for t in self._study.get_trials(deepcopy=deepcopy, states=states)
                if TrialRecord.of(t).nfe == self._nfe]

    def __getattr__(self, name: str):
        return getattr(self._study, name)


class PerNFEPruner(BasePruner):
    """Run ``base`` as if the study held only the trials at the pruned trial's NFE."""

    def __init__(self, base: BasePruner) -> None:
        self.base = base

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Ask ``base``, showing it the trials at ``trial``'s NFE."""
        nfe = TrialRecord.of(trial).nfe
        return self.base.prune(_SameNFE(study, nfe), trial)  # type: ignore[arg-type]


def make_pruner(settings: PrunerSettings) -> BasePruner:
    """The pruner named by ``pruner.kind``, per NFE; no pruning without stages."""
    kind, stages = settings.kind, settings.stages
    if kind == "none" or not stages:
        return optuna.pruners.NopPruner()
    if kind == "median":
        base: BasePruner = optuna.pruners.MedianPruner(
            n_startup_trials=settings.n_startup_trials, n_warmup_steps=0)
    elif kind == "successive_halving":
        base = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=stages[0], reduction_factor=settings.reduction_factor,
            min_early_stopping_rate=settings.min_early_stopping_rate)
    else:
        raise ConfigError("pruner.kind", kind, f"choose one of: {', '.join(PRUNERS)}")
    return PerNFEPruner(base)
