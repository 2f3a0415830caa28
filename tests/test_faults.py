"""Faults inside a trial: a schedule that makes NaN images fails its trial, not the study."""

from __future__ import annotations

import math
from dataclasses import replace

import optuna
from optuna.trial import TrialState

from skipsearch.cli import compose_config
from skipsearch.config import sampler_choices
from skipsearch.runtime import build_model, build_scorer
from skipsearch.search.objective import TRIAL_ERRORS, TrialContext, make_objective
from skipsearch.search.space import SearchSpace, build_space
from skipsearch.tracking import NoTracker


class PoisonedSpace(SearchSpace):
    """The real search space, except that odd trials get NaN coefficients."""

    def suggest(self, trial):
        schedule, sampler = super().suggest(trial)
        if trial.number % 2:
            schedule = replace(schedule, coefficients=(math.nan,) * len(schedule.coefficients))
        return schedule, sampler


def test_nan_images_fail_the_trial_with_its_reason_and_the_study_goes_on(tiny_overrides,
                                                                         tmp_path):
    cfg = compose_config([*tiny_overrides, "search.steps=[2]"])
    model = build_model(cfg, "cpu")
    scorer = build_scorer(cfg, "cpu", model)
    levels = [p.level for p in model.denoiser.skips]
    space = build_space("linear", cfg.skip.space, [2], levels, samplers=sampler_choices(cfg))
    poisoned = PoisonedSpace(**{f: getattr(space, f) for f in space.__dataclass_fields__})
    ctx = TrialContext(model, poisoned, range(24), 12, "cpu", scorer, NoTracker(), [6, 12])
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(make_objective(ctx), n_trials=4, catch=TRIAL_ERRORS)

    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL] * 2
    for t in study.trials:
        if t.state == TrialState.FAIL:
            # it stopped at the first stage, and says why
            assert "NaN or infinite images" in t.user_attrs["fail_reason"]
            assert t.intermediate_values == {}
        else:
            assert math.isfinite(t.value) and sorted(t.intermediate_values) == [6, 12, 24]
