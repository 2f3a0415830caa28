"""Faults inside a trial: NaN images fail the trial, not the study; out of memory halves."""

from __future__ import annotations

import math
from dataclasses import replace

import optuna
import torch
from optuna.trial import TrialState

from skipsearch.cli import compose_config
from skipsearch.configuration.build import build
from skipsearch.execution import evaluate as evaluate_module
from skipsearch.execution.evaluate import evaluate
from skipsearch.execution.runtime import build_model, build_scorer
from skipsearch.samplers.spec import SamplerSpec, sampler_choices
from skipsearch.search.objective import TRIAL_ERRORS, TrialContext, make_objective
from skipsearch.search.space import SearchSpace, build_space
from skipsearch.tracking import NoTracker
from skipsearch.tuning.schedule import SkipSchedule


class PoisonedSpace(SearchSpace):
    """The real search space, except that odd trials get NaN coefficients."""

    def suggest(self, trial, cell):
        schedule, sampler = super().suggest(trial, cell)
        if trial.number % 2:
            schedule = replace(schedule, coefficients=(math.nan,) * len(schedule.coefficients))
        return schedule, sampler


def test_nan_images_fail_the_trial_with_its_reason_and_the_study_goes_on(tiny_overrides,
                                                                         tmp_path):
    cfg = compose_config([*tiny_overrides, "search.steps=[2]"])
    settings = build(cfg, "sample")
    model = build_model(settings, "cpu")
    scorer = build_scorer(settings, "cpu", model)
    levels = [p.level for p in model.denoiser.skips]
    space = build_space("linear", cfg.skip.space, [2], levels, samplers=sampler_choices(cfg))
    poisoned = PoisonedSpace(**{f: getattr(space, f) for f in space.__dataclass_fields__})
    ctx = TrialContext(model, poisoned, range(24), 12, "cpu", scorer, NoTracker(), [6, 12])
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(make_objective(ctx, space.cells()[0], 4), n_trials=4, catch=TRIAL_ERRORS)

    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL] * 2
    for t in study.trials:
        if t.state == TrialState.FAIL:
            # it stopped at the first stage, and says why
            assert "NaN or infinite images" in t.user_attrs["fail_reason"]
            assert t.intermediate_values == {}
        else:
            assert math.isfinite(t.value) and sorted(t.intermediate_values) == [6, 12, 24]


def test_out_of_memory_halves_the_batch_and_gives_the_same_images(tiny_overrides, caplog,
                                                                   monkeypatch):
    cfg = compose_config(tiny_overrides)
    model = build_model(build(cfg, "sample"), "cpu")
    schedule = SkipSchedule.identity(len(model.denoiser.skips))
    sampler = SamplerSpec.from_config(cfg, 2)
    reference = evaluate(model, schedule, sampler, range(12), 12, "cpu", keep_images=True)

    real_forward, seen = model.denoiser.forward, []

    def limited(x, sigma, *args, **kwargs):  # a device that holds 5 images at most
        seen.append(x.shape[0])
        if x.shape[0] > 5:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return real_forward(x, sigma, *args, **kwargs)

    monkeypatch.setattr(model.denoiser, "forward", limited)
    monkeypatch.setattr(evaluate_module, "FITTING_BATCH", {})
    with caplog.at_level("WARNING"):
        halved = evaluate(model, schedule, sampler, range(12), 12, "cpu", keep_images=True)
    # the same seeds give the same images: float32 convolutions may round differently per
    # batch shape (3e-4 at most seen here), less than half an 8-bit level (1 / 255)
    torch.testing.assert_close(halved.images, reference.images, rtol=0, atol=1 / 255)
    assert max(s for s in seen if s <= 5) == 3 and 12 in seen and 6 in seen  # 12 -> 6 -> 3
    assert "halving it to 6" in caplog.text and "halving it to 3" in caplog.text
    assert evaluate_module.FITTING_BATCH[(model.sha256, "cpu", "fp32")] == 3  # remembered
