"""SkipSchedule parameterizations and round trip."""

from __future__ import annotations

import pytest

from skipsearch.tuning.schedule import SkipSchedule, linear_coefficients, param_names


def test_linear_is_the_papers_interpolation():
    k, top, bottom = 6, 1.0, 0.5
    coeffs = linear_coefficients(top, bottom, k)
    assert coeffs[0] == bottom and coeffs[-1] == pytest.approx(top)
    for i, c in enumerate(coeffs):
        assert c == pytest.approx(bottom + i * (top - bottom) / (k - 1))


def test_per_level_gives_each_level_one_coefficient():
    levels = [2, 2, 1, 1, 0, 0]
    assert param_names("per_level", levels) == ["rho_level2", "rho_level1", "rho_level0"]
    s = SkipSchedule.from_params("per_level",
                                 {"rho_level0": 0.9, "rho_level1": 0.8, "rho_level2": 0.7},
                                 levels)
    assert s.coefficients == (0.7, 0.7, 0.8, 0.8, 0.9, 0.9)


def test_per_skip_and_dict_round_trip():
    params = {f"rho_skip{i}": 0.5 + 0.1 * i for i in range(3)}
    s = SkipSchedule.from_params("per_skip", params, [1, 1, 0])
    assert s.coefficients == pytest.approx((0.5, 0.6, 0.7))
    assert SkipSchedule.from_dict(s.to_dict()) == s
    assert SkipSchedule.identity(3).is_identity and not s.is_identity


def test_missing_and_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match="rho_bottom"):
        SkipSchedule.from_params("linear", {"rho_top": 1.0}, [0, 0])
    with pytest.raises(ValueError, match="unknown parameterization"):
        param_names("cubic", [0])
