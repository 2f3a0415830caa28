"""Search bounds: a best schedule that sits on a bound, and widening that bound step by step.

A best coefficient within 2% of its range from a bound says the optimum may lie beyond it.
The summary and the report flag it; with ``search.expand_bounds`` the cell widens that bound
by ``search.expand_step`` of the range and goes on in the same study, never past the hard
limits ``search.bound_limit`` (widened ranges are recorded; a resumed cell keeps them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import optuna

from .group import cell_label
from .record import SPACE, set_study_attr

log = logging.getLogger(__name__)

MARGIN = 0.02  # of the range


def bound_hits(params: Mapping[str, object], ranges: Mapping[str, list],
               margin: float = MARGIN) -> dict[str, str]:
    """Parameter -> ``low`` or ``high`` for values within ``margin`` of the range of a bound."""
    hits = {}
    for name, value in params.items():
        span = ranges.get(name)
        if not isinstance(value, (int, float)) or span is None or isinstance(span[0], str):
            continue
        low, high = float(span[0]), float(span[1])
        width = high - low
        if width <= 0:
            continue
        if value - low <= margin * width:
            hits[name] = "low"
        elif high - value <= margin * width:
            hits[name] = "high"
    return hits


def describe(hits: Mapping[str, str], params: Mapping[str, object],
             ranges: Mapping[str, list]) -> str:
    """``rho_top=1.1990 at its upper bound 1.2`` for each hit, joined by commas."""
    return ", ".join(f"{name}={float(params[name]):.4f} at its "
                     f"{'lower' if side == 'low' else 'upper'} bound "
                     f"{ranges[name][0 if side == 'low' else 1]:g}"
                     for name, side in hits.items())


def widened(ranges: Mapping[str, list], hits: Mapping[str, str], step: float,
            limit: Mapping[str, float]) -> dict[str, list]:
    """The ranges with every hit coefficient bound moved out by ``step`` of its range, clipped.

    Only skip coefficients (``rho_*``) widen; ``limit`` holds their hard ``low`` and ``high``.
    """
    out = {k: list(v) for k, v in ranges.items()}
    for name, side in hits.items():
        if not name.startswith("rho_"):
            continue
        low, high = map(float, out[name])
        grow = step * (high - low)
        if side == "low":
            out[name] = [max(float(limit["low"]), low - grow), high]
        else:
            out[name] = [low, min(float(limit["high"]), high + grow)]
    return out


def expand_cell(study: optuna.Study, ranges: Mapping[str, list], step: float,
                limit: Mapping[str, float]) -> dict[str, list] | None:
    """Widen the cell's bounds its best trial sits on; the new ranges, or None if none.

    The baseline competes: all coefficients 1.0 on an upper bound of 1.0 is worth widening.
    """
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return None
    best = min(done, key=lambda t: t.values[0])
    hits = bound_hits(best.params, ranges)
    new = widened(ranges, hits, step, limit)
    if new == {k: list(v) for k, v in ranges.items()}:
        return None
    set_study_attr(study, SPACE, new)
    log.info("%s: best %s; widened to %s (search.expand_bounds, hard limits [%g, %g])",
             cell_label(study), describe(hits, best.params, ranges),
             ", ".join(f"{k}=[{v[0]:g}, {v[1]:g}]" for k, v in new.items() if v != ranges[k]),
             float(limit["low"]), float(limit["high"]))
    return new
