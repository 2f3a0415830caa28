"""Run, resume and read a sweep from Python, with the command line's config and checks.

Usage (a notebook, a script)::

    import skipsearch
    result = skipsearch.sweep({"search.n_trials": 20, "search.steps": [3, 4, 6]})
    result.to_pandas()                 # the per-NFE table `skipsearch sweep` prints
    schedule = result.best()[11]       # the best SkipSchedule at 11 NFE
    again = skipsearch.open_sweep(["search.study_name=digits-heun-linear"])

Overrides are the command line's (a list of ``key=value``, or a mapping); a bad value raises
``skipsearch.configuration.errors.ConfigError`` naming the key, before anything is written.
The same config and runner serve both doors, so a sweep started here resumes from the command
line and the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Overrides = Sequence[str] | Mapping[str, object]


def as_overrides(overrides: Overrides) -> list[str]:
    """``key=value`` strings from a list of them or a mapping (lists become ``[a,b]``)."""
    if isinstance(overrides, Mapping):
        return [f"{key}={render(value)}" for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise TypeError("give overrides as a list of 'key=value' strings or a mapping, "
                        f"not one string ({overrides!r})")
    return [str(o) for o in overrides]


def render(value: object) -> str:
    """A value as Hydra's override grammar reads it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{render(v)}" for k, v in value.items()) + "}"
    return str(value)


def settings_of(overrides: Overrides, command: str):
    """The composed config and its checked settings for ``command`` (ConfigError if bad)."""
    from .cli import compose_config, our_overrides
    from .configuration.build import build

    cfg = compose_config([*as_overrides(overrides), *our_overrides(command)])
    return cfg, build(cfg, command)


def sweep(overrides: Overrides = ()) -> SweepResult:
    """Run (or resume) the sweep the overrides describe, as ``skipsearch sweep`` does."""
    from .cli.sweep import run_sweep

    cfg, settings = settings_of(overrides, "sweep")
    run_sweep(cfg, None, settings)
    return open_sweep(overrides)


def open_sweep(overrides: Overrides = ()) -> SweepResult:
    """Read the sweep the overrides name (``search.study_name``, or the sweep's defaults)."""
    from .search.catalog import final_scores
    from .search.study import open_sweep as open_stored
    from .search.summary import summarize

    _, settings = settings_of(overrides, "export")
    study = open_stored(settings.storage, settings.study_name)
    protocol, scores = final_scores(study)
    return SweepResult(study, summarize(study, scores), scores, protocol)


@dataclass
class SweepResult:
    """A sweep as its summary shows it: a row per NFE, the best schedules, the front."""

    study: Any  # search.group.Sweep: every trial, numbered across the cells
    rows: list  # search.summary.SummaryRow, one per NFE
    scores: Mapping[int, Mapping]  # confirmed records by sweep-wide trial number
    protocol: Any = None  # the confirmation's protocol, None when nothing was confirmed

    @property
    def name(self) -> str:
        """The sweep's name."""
        return self.study.study_name

    @property
    def trials(self) -> list:
        """Every trial (Optuna FrozenTrials, numbered across the cells)."""
        return self.study.trials

    @property
    def front(self) -> list[int]:
        """The NFEs on the Pareto front of best score against NFE."""
        return [r.nfe for r in self.rows if r.on_front]

    def table(self) -> list[dict]:
        """The per-NFE table as dicts: scores, change and interval, confirm metrics, trial."""
        from .search.summary import row_record

        return [row_record(r) for r in self.rows]

    def to_pandas(self):
        """``table()`` as a pandas DataFrame indexed by NFE (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install pandas; table() gives the "
                              "same rows as dicts") from None
        return pd.DataFrame(self.table()).set_index("nfe")

    def best(self) -> dict:
        """NFE -> the best trial's SkipSchedule (confirmed where the sweep confirmed)."""
        from .search.results import trial_schedule

        return {r.nfe: trial_schedule(self.study.trials[r.best_trial]) for r in self.rows}
