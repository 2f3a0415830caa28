"""Cells of a sweep: resumes never replay a draw, counts are exact, space changes are handled."""

from __future__ import annotations

import itertools

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from skipsearch.configuration.errors import ConfigError
from skipsearch.execution.seed_range import SeedRange
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.search.group import load_sweep
from skipsearch.search.limit import limit_line, limit_records
from skipsearch.search.record import study_attrs
from skipsearch.search.results import Protocol, confirmed
from skipsearch.search.space import build_space
from skipsearch.search.study import (
    TrialSeededSampler,
    build_sampler,
    check_cell,
    make_sampler,
)
from tests.conftest import run_cli
from tests.search.test_workers import check_no_trial_lost_or_repeated, two_workers


def seeded(kind: str, seed: int = 0) -> TrialSeededSampler:
    cfg = OmegaConf.create({"sampler": kind, "seed": seed, "n_startup_trials": 1})
    return TrialSeededSampler(lambda s: build_sampler(cfg, None, s), seed, "heun-steps2")


def draw(study: optuna.Study, n: int) -> list[float]:
    values = []
    for _ in range(n):
        trial = study.ask()
        values.append(trial.suggest_float("x", 0.0, 1.0))
        study.tell(trial, values[-1])
    return values


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_a_process_joining_a_study_draws_new_values_and_a_fresh_one_repeats(kind):
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(study_name="a", storage=storage, sampler=seeded(kind))
    values = draw(first, 3)
    # a second process (a new sampler with the same seed) resumes the study
    joined = optuna.load_study(study_name="a", storage=storage, sampler=seeded(kind))
    more = draw(joined, 3)
    assert len(set(values + more)) == 6
    # one process on a fresh study draws the same values every time
    again = optuna.create_study(study_name="b", storage=storage, sampler=seeded(kind))
    assert draw(again, 6) == values + more
    other = optuna.create_study(study_name="c", storage=storage, sampler=seeded(kind, seed=1))
    assert draw(other, 3) != values


def test_a_grid_is_visited_once_in_one_order_across_processes():
    cfg = OmegaConf.create({"sampler": "grid", "seed": 0, "grid_points": 2})
    space = build_space("linear", {"default": {"low": 0.5, "high": 1.0}}, [2], [0, 1, 2])
    storage = optuna.storages.InMemoryStorage()
    drawn = []
    for _ in range(2):  # two processes, one after the other, each with its own sampler
        study = optuna.create_study(study_name="g", storage=storage, load_if_exists=True,
                                    sampler=make_sampler(cfg, space, "heun-steps2"))
        def objective(trial: optuna.Trial) -> float:
            drawn.append(tuple(trial.suggest_float(k, 0.5, 1.0) for k in space.bounds))
            return 0.0

        study.optimize(objective, n_trials=2)
    assert sorted(drawn) == sorted(itertools.product([0.5, 1.0], repeat=2))


def params_of(out, name: str = "digits-heun-linear") -> list[tuple]:
    sweep = load_sweep(name=name, storage=f"sqlite:///{out}/studies.db")
    return [(t.number, t.state, tuple(sorted(t.params.items()))) for t in sweep.trials]


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_resuming_three_five_seven_draws_every_trial_once(kind, tiny_overrides, tmp_path):
    out = tmp_path / "out"
    history = []
    for count in (3, 5, 7):
        result = run_cli("sweep", *tiny_overrides, f"search={kind}", "search.steps=[2]",
                         "search.n_startup_trials=2", f"search.n_trials={count}",
                         "search.confirm_top_k=0")
        assert result.returncode == 0, result.stderr
        trials = params_of(out)
        assert len(trials) == count  # exact: nothing skipped, nothing beyond the count
        assert all(state == TrialState.COMPLETE for _, state, _ in trials)
        assert len({p for _, _, p in trials}) == count  # no two trials share parameters
        assert trials[:len(history)] == history  # finished trials are untouched
        history = trials


def test_three_random_workers_fill_every_cell_exactly(tiny_overrides, tmp_path):
    sweep = two_workers(tiny_overrides, f"journal:///{tmp_path / 'study.log'}", "three",
                        workers=3, sampler="random")
    check_no_trial_lost_or_repeated(sweep)


def test_a_new_step_count_adds_a_cell(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    base = [*tiny_overrides, "search=random", "search.n_trials=2", "search.confirm_top_k=0"]
    assert run_cli("sweep", *base, "search.steps=[2]").returncode == 0
    before = params_of(out)
    grown = run_cli("sweep", *base, "search.steps=[2,3]")
    assert grown.returncode == 0, grown.stderr
    sweep = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db")
    assert [c.study_name for c in sweep.cells] == ["digits-heun-linear/heun-steps2",
                                                   "digits-heun-linear/heun-steps3"]
    assert params_of(out)[:2] == before
    assert [t.state for t in sweep.trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.user_attrs["nfe"] for t in sweep.trials) == [3, 3, 5, 5]


@pytest.mark.parametrize("change", [
    {"skip.profiles": "[constant,rising]"},
    {"skip.window_space": "{low:0.1,high:10}"},
])
def test_an_incompatible_space_change_is_refused_up_front(change, tiny_overrides, tmp_path):
    out = tmp_path / "out"
    base = [*tiny_overrides, "search=random", "search.steps=[2]", "search.confirm_top_k=0"]
    first = {"skip.profiles": "[constant,falling]", "search.n_trials": "2"}
    assert run_cli("sweep", *base, *(f"{k}={v}" for k, v in first.items())).returncode == 0
    before = params_of(out)
    second = {**first, **change, "search.n_trials": "3"}
    refused = run_cli("sweep", *base, *(f"{k}={v}" for k, v in second.items()))
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    key = next(iter(change))
    assert len(lines) == 1 and lines[0].startswith(f"skipsearch: error: {key}=")
    assert "digits-heun-linear/heun-steps2" in lines[0]
    assert params_of(out) == before  # no trial added, none failed


def test_a_widened_range_goes_on_in_the_same_cell(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    base = [*tiny_overrides, "search=random", "search.steps=[2]", "search.confirm_top_k=0"]
    assert run_cli("sweep", *base, "search.n_trials=2").returncode == 0
    wider = run_cli("sweep", *base, "search.n_trials=4", "skip.space.rho_top={low:0.3,high:1.5}")
    assert wider.returncode == 0, wider.stderr
    sweep = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db")
    assert len(sweep.cells) == 1 and len(sweep.trials) == 4
    assert study_attrs(sweep.cells[0])["space"]["rho_top"] == [0.3, 1.5]
    assert sweep.trials[-1].distributions["rho_top"] == FloatDistribution(0.3, 1.5)


def test_a_new_cell_starts_from_its_neighbours_best(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    base = [*tiny_overrides, "search=random", "search.n_trials=3", "search.confirm_top_k=0",
            "search.n_startup_trials=3"]
    assert run_cli("sweep", *base, "search.steps=[2,4]").returncode == 0
    sweep = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db")
    best = {}
    for cell in sweep.cells:
        tuned = [t for t in cell.trials if not t.user_attrs.get("baseline")]
        assert all(t.state == TrialState.COMPLETE for t in tuned)  # no warm start repeated
        best[cell.study_name] = min(tuned, key=lambda t: t.value)
    grown = run_cli("sweep", *base, "search.steps=[2,3,4]")
    assert grown.returncode == 0, grown.stderr
    new = load_sweep(name="digits-heun-linear",
                     storage=f"sqlite:///{out}/studies.db").cells[1]
    assert new.study_name == "digits-heun-linear/heun-steps3"
    first = new.trials[1:3]  # after the baseline: the best of 2 and of 4 steps, in that order
    assert [t.params for t in first] == [b.params for b in best.values()]
    assert [t.user_attrs["warm_start_from"] for t in first] == [
        f"{name}#{b.number}" for name, b in best.items()]


def test_a_best_on_a_bound_is_flagged_and_expand_bounds_widens_it(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    base = [*tiny_overrides, "search.steps=[2]", "search.confirm_top_k=0",
            "skip.space.rho_top={low:0.6,high:1.0}", "skip.space.rho_bottom={low:0.6,high:1.0}"]
    # a 2-point grid draws only the corners: the best tuned schedule lies on bounds
    grid = run_cli("sweep", *base, "search=grid", "search.grid_points=2", "search.n_trials=2")
    assert grid.returncode == 0, grid.stderr
    assert "on a bound: NFE 3 best rho_top=" in grid.stdout
    wider = run_cli("sweep", *base, "search=random", "search.n_trials=3",
                    "search.expand_bounds=true", "search.expand_step=0.5",
                    "search.bound_limit={low:0.5,high:1.1}")
    assert wider.returncode == 0, wider.stderr
    cell = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db").cells[0]
    corner = min(cell.trials[:2], key=lambda t: t.value).params  # the baseline or a corner
    expect = {k: [0.5, 1.0] if v == 0.6 else [0.6, 1.1] for k, v in corner.items()}
    assert study_attrs(cell)["space"] == expect  # each hit bound moved by half the range, clipped
    assert {k: [d.low, d.high] for k, d in cell.trials[2].distributions.items()} == expect
    assert "widened to" in wider.stdout + wider.stderr


def test_the_limit_line_compares_with_the_best_baseline_at_any_nfe(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", *tiny_overrides, "search.steps=[2,3]", "search.n_trials=3",
                     "search.n_startup_trials=1", "search.confirm_top_k=1",
                     "search.limit_steps=[5]")
    assert result.returncode == 0, result.stderr
    assert "breaking the limit: " in result.stdout
    limit = next(line for line in result.stdout.splitlines() if "breaking the limit" in line)
    shown = run_cli("show", "digits-heun-linear", *tiny_overrides)  # what the sweep printed
    assert shown.returncode == 0 and limit in shown.stdout.splitlines(), shown.stdout
    sweep = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db")
    protocol = Protocol(SeedRange(24, 30))
    records = limit_records(sweep, protocol)
    assert records["heun-steps5"]["nfe"] == 9
    scores = confirmed(sweep, protocol)
    baselines = [scores[t.number]["score"] for t in sweep.trials
                 if t.user_attrs.get("baseline")]
    target = min([*baselines, records["heun-steps5"]["score"]])
    found = records["answer"]
    assert found["baseline_score"] == target
    tuned = sorted((t.user_attrs["nfe"], scores[t.number]["score"], t.number)
                   for t in sweep.trials
                   if t.number in scores and not t.user_attrs.get("baseline"))
    winners = [(nfe, fid, n) for nfe, fid, n in tuned if fid < target]
    if not winners:
        assert found["trial"] is None and "no tuned schedule beats" in result.stdout
    else:
        nfe, fid, number = winners[0]
        assert (found["nfe"], found["trial"]) == (nfe, number)
        assert found["delta"] == pytest.approx(fid - target, rel=1e-6)
        low, high = found["delta_ci95"]
        assert low < found["delta"] < high


def test_the_limit_line_names_the_nfe_and_the_interval():
    line = limit_line({"baseline_nfe": 35, "baseline_score": 1.63, "trial": 12, "nfe": 11,
                       "score": 1.5, "delta": -0.13, "delta_ci95": [-0.2, -0.06]})
    assert line == ("breaking the limit: tuned at NFE 11 (FID 1.500, trial 12) beats the best "
                    "baseline at any NFE measured (NFE 35, FID 1.630): change -0.130 "
                    "[-0.200, -0.060] (95%)")
    assert limit_line({**{"baseline_nfe": 35, "baseline_fid": 1.63, "trial": 12, "nfe": 11,
                          "fid": 1.5, "delta": -0.13, "delta_ci95": [-0.2, 0.06]}}).endswith(
        "not significant: the interval reaches zero")


@pytest.mark.parametrize("overrides, key", [
    (["search.confirm_blocks=1"], "search.confirm_blocks"),
    (["search.limit_steps=[0]"], "search.limit_steps"),
    (["search.expand_bounds=true", "search.expand_step=-1"], "search.expand_step"),
])
def test_bad_cell_settings_are_one_line(overrides, key, tiny_overrides, tmp_path):
    result = run_cli("sweep", *tiny_overrides, *overrides)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skipsearch: error: {key}=")
    assert not (tmp_path / "out").exists()


def test_two_running_copies_of_a_baseline_leave_exactly_one_to_run():
    """Workers that both queued a cell's baseline and both started it: the earlier copy runs."""
    from skipsearch.search.allocate import SkippedTrialError, check_unique

    study = optuna.create_study()
    attrs = {"baseline": True, "baseline_key": "heun-steps2"}
    for _ in range(2):
        study.enqueue_trial({"rho_top": 1.0, "rho_bottom": 1.0}, user_attrs=attrs)
    first, second = study.ask(), study.ask()  # both RUNNING at once
    for trial in (first, second):
        trial.suggest_float("rho_top", 0.5, 1.2)
        trial.suggest_float("rho_bottom", 0.5, 1.2)
    outcomes = []
    for trial in (first, second):
        try:
            check_unique(trial)
            outcomes.append("runs")
        except SkippedTrialError:
            outcomes.append("skipped")
    assert outcomes == ["runs", "skipped"]


def test_a_queued_baseline_outside_the_bounds_warns_of_nothing(recwarn):
    """rho = 1 is the baseline even where the searched range stops below it."""
    space = build_space("linear", {"default": {"low": 0.4, "high": 0.9}}, [2], [0, 1, 2])
    cell = SamplerSpec("heun", 2)
    study = optuna.create_study()
    study.enqueue_trial(space.baseline(cell))
    schedule, _ = space.suggest(study.ask(), cell)
    assert set(schedule.params.values()) == {1.0}
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("key, old, new, expected", [
    ("n_samples", 1500, 200, "metric.n_samples=200: study s/c was run with "
                             "metric.n_samples=1500; restore it"),
    ("sampler", {"name": "heun", "rho": 7.0}, {"name": "heun", "rho": 5.0},
     "sampler.rho=5.0: study s/c was run with sampler.rho=7.0; restore it"),
    ("sampler", {"options": {"S_churn": 40.0}}, {"options": {"S_churn": 10.0}},
     "sampler.S_churn=10.0: study s/c was run with sampler.S_churn=40.0"),
    ("model_sha256", "ab" * 32, "cd" * 32, "model='sha256 cdcdcdcdcdcd': study s/c was run "
                                          "with model='sha256 abababababab'"),
    ("skipsearch_version", "0.1.0", "0.2.0", "search.study_name='s/c': study s/c was run "
                                            "with skipsearch_version='0.1.0'"),
])
def test_a_resume_with_another_setting_names_that_setting(key, old, new, expected):
    study = optuna.create_study(study_name="s/c")
    study.set_user_attr(key, old)
    with pytest.raises(ConfigError) as err:
        check_cell(study, {key: new}, ["fid"], {})
    assert expected in str(err.value)
    assert str(err.value).endswith("or start another sweep with search.study_name=NEW_NAME")
