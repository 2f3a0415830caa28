"""Sample grids of the baseline and the best schedule at each NFE, from the trials' records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial

from ..execution.evaluate import evaluate
from ..execution.images import save_grid
from ..models import LoadedModel
from ..search.group import Sweep
from ..search.results import baseline_per_nfe, best_per_nfe, trial_sampler, trial_schedule


@dataclass(frozen=True)
class Grid:
    """One PNG grid: the NFE, which schedule (baseline or best) and the trial it came from."""

    nfe: int
    role: str
    trial: int
    path: Path


def grid_path(folder: Path, nfe: int, role: str) -> Path:
    """Where the grid of ``role`` (baseline or best) at ``nfe`` is written."""
    return folder / f"samples-nfe{nfe:03d}-{role}.png"


def draw_grid(model: LoadedModel, study: Sweep, trial: FrozenTrial, seeds: Sequence[int],
              batch_size: int, device: str, path: Path) -> Path:
    """Sample ``seeds`` with the trial's schedule and sampler and save them as a grid."""
    result = evaluate(model, trial_schedule(trial), trial_sampler(study, trial), seeds,
                      batch_size, device, scorer=None, preview=len(seeds),
                      desc=f"report trial {trial.number}")
    return save_grid(result.preview, path)


def draw_grids(model: LoadedModel, study: Sweep, scores: Mapping[int, Mapping] | None,
               seeds: Sequence[int], batch_size: int, device: str, folder: Path) -> list[Grid]:
    """The baseline's and the best trial's grid at every NFE (one grid if they are the same)."""
    grids = []
    baselines = baseline_per_nfe(study, scores)
    for nfe, best in best_per_nfe(study, scores).items():
        base = baselines.get(nfe)
        for role, trial in (("baseline", base), ("best", best)):
            if trial is None or (role == "best" and base is not None
                                 and trial.number == base.number):
                continue
            path = draw_grid(model, study, trial, seeds, batch_size, device,
                             grid_path(folder, nfe, role))
            grids.append(Grid(nfe, role, trial.number, path))
    return grids
