"""A best schedule on a search bound is flagged, and its cell's bound widens step by step."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from skipsearch.search.bounds import bound_hits, expand_cell, widened
from skipsearch.search.record import study_attrs
from skipsearch.search.study import merged

RANGES = {"rho_top": [0.5, 1.2], "rho_bottom": [0.5, 1.2]}
LIMIT = {"low": 0.3, "high": 1.5}


def test_a_value_within_two_percent_of_the_range_is_on_the_bound():
    # 2% of the range 0.7 is 0.014
    assert bound_hits({"rho_top": 1.187, "rho_bottom": 0.513}, RANGES) == {
        "rho_top": "high", "rho_bottom": "low"}
    assert bound_hits({"rho_top": 1.185, "rho_bottom": 0.515, "profile": "rising"},
                      {**RANGES, "profile": ["constant", "rising"]}) == {}


def test_widening_moves_the_hit_bound_by_a_step_and_stops_at_the_hard_limit():
    ranges = widened(RANGES, {"rho_top": "high"}, 0.25, LIMIT)
    assert ranges["rho_top"] == pytest.approx([0.5, 1.375]) and ranges["rho_bottom"] == [0.5, 1.2]
    for _ in range(3):
        ranges = widened(ranges, {"rho_top": "high", "rho_bottom": "low"}, 0.25, LIMIT)
    assert ranges["rho_top"] == [0.5, 1.5] and ranges["rho_bottom"] == [0.3, 1.2]
    assert widened(ranges, {"rho_top": "high"}, 0.25, LIMIT) == ranges  # at the limit: no more
    assert widened({"disc_rho": [3, 12]}, {"disc_rho": "high"}, 0.25, LIMIT) == {
        "disc_rho": [3, 12]}  # only skip coefficients widen


def test_expanding_a_cell_records_the_wider_range_and_a_resume_keeps_it():
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    dists = {k: FloatDistribution(*v) for k, v in RANGES.items()}
    study.add_trial(create_trial(params={"rho_top": 1.0, "rho_bottom": 1.0}, distributions=dists,
                                 value=10.0, user_attrs={"baseline": True}))
    assert expand_cell(study, RANGES, 0.25, LIMIT) is None  # 1.0 is inside [0.5, 1.2]
    study.add_trial(create_trial(params={"rho_top": 1.199, "rho_bottom": 0.8},
                                 distributions=dists, value=9.0))
    new = expand_cell(study, RANGES, 0.25, LIMIT)
    assert new["rho_top"] == pytest.approx([0.5, 1.375])
    assert study_attrs(study)["space"] == new
    # the same command resumes with the config's narrower range: the cell keeps the wider one
    assert merged(new, RANGES) == new
    assert merged(new, {**RANGES, "rho_bottom": [0.4, 1.2]})["rho_bottom"] == [0.4, 1.2]
