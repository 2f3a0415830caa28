"""Staged FID and pruners, the Pareto export, confirmation on fresh seeds, search presets."""

from __future__ import annotations

import re
from statistics import median

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from skipsearch.configuration.errors import ConfigError
from skipsearch.execution.evaluate import batch_ranges
from skipsearch.samplers import nfe_of
from skipsearch.search.group import load_sweep
from skipsearch.search.names import stage_counts
from skipsearch.search.pruning import PerNFEPruner
from skipsearch.search.record import SHOWN, study_attrs
from skipsearch.tuning.schedule_file import load_schedule
from tests.conftest import run_cli

ONE_NFE = ["search.steps=[3]", "search.n_startup_trials=1"]


def load(out, name: str = "digits-heun-linear") -> optuna.Study:
    return load_sweep(name=name, storage=f"sqlite:///{out}/studies.db")


def test_stage_counts_and_batches_split_at_stages():
    assert stage_counts([0.5, 0.25], 1000) == [250, 500]
    with pytest.raises(ConfigError, match=r"pruner\.stages"):
        stage_counts([1.0], 1000)
    assert batch_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_ranges(10, 4, cuts=(3, 6, 10)) == [(0, 3), (3, 4), (4, 6), (6, 8), (8, 10)]


def finished(study, nfe: int, value: float) -> None:
    study.add_trial(create_trial(
        params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, value=value,
        intermediate_values={10: value}, user_attrs={"nfe": nfe}))


def pruned_at(study, nfe: int, value: float) -> bool:
    trial = study.ask({"x": FloatDistribution(0, 1)})
    trial.set_user_attr("nfe", nfe)
    trial.report(value, 10)
    frozen = study._storage.get_trial(trial._trial_id)
    decision = study.pruner.prune(study, frozen)
    study.tell(trial, state=TrialState.FAIL)
    return bool(decision)


@pytest.mark.parametrize("wrapped", [True, False])
def test_median_pruner_compares_trials_at_the_same_nfe(wrapped, tmp_path):
    base = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db",
                                pruner=PerNFEPruner(base) if wrapped else base)
    for nfe, fids in ((5, (400, 420, 440)), (11, (20, 22, 24))):
        for fid in fids:
            finished(study, nfe, fid)
    # the median over all six trials is 212; per NFE it is 420 and 22
    assert pruned_at(study, 5, 410) is (not wrapped)
    assert pruned_at(study, 11, 30) is wrapped
    assert pruned_at(study, 11, 21) is False


def read_sweep(result, out):
    assert result.returncode == 0, result.stderr
    study = load(out)
    return study, study.get_trials()


@pytest.mark.parametrize("pruner", ["median", "successive_halving"])
def test_pruners_stop_trials_at_the_stage_counts(pruner, tiny_overrides, tmp_path):
    out = tmp_path / "out"
    args = [*tiny_overrides, *ONE_NFE, f"pruner={pruner}", "search.n_trials=9",
            "search.confirm_top_k=0", "search.sampler=random"]
    if pruner == "median":
        args.append("pruner.n_startup_trials=1")
    _, trials = read_sweep(run_cli("sweep", *args), out)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 9
    assert complete[0].user_attrs.get("baseline")  # a baseline always runs to the end
    for t in complete:
        assert sorted(t.intermediate_values) == [6, 12, 24]
        assert t.intermediate_values[24] == t.value and t.user_attrs["n_samples"] == 24
    for t in pruned:
        assert sorted(t.intermediate_values) in ([6], [6, 12])
        assert t.user_attrs["n_samples"] == max(t.intermediate_values)
        assert not t.user_attrs.get("baseline")
        if pruner == "median":  # worse than the median of the trials finished before it
            step = max(t.intermediate_values)
            before = [c.intermediate_values[step] for c in complete
                      if c.datetime_complete < t.datetime_complete]
            assert t.intermediate_values[step] > median(before)


def test_pareto_front_is_exported_one_schedule_per_nfe(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", *tiny_overrides, "sweeps=[digits,pareto]", "search.steps=[2,3,4]",
                     "search.n_trials=10", "search.population_size=4", "search.confirm_top_k=0")
    assert result.returncode == 0, result.stderr
    assert "Pareto front of the search" in result.stdout
    study = load(out, "digits-heun-linear-pareto")
    assert len(study.directions) == 2
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    # brute force: a trial is on the front when no other is at least as good in both and
    # better in one
    front = {(int(t.values[1]), t.values[0]) for t in trials if not any(
        o.values[0] <= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
        for o in trials)}
    assert front == {(int(t.values[1]), t.values[0]) for t in study.best_trials}
    folder = out / "exports" / "digits-heun-linear-pareto"
    index = yaml.safe_load((folder / "pareto.yaml").read_text())
    assert index["objectives"] == ["digits_fid", "nfe"]
    assert {(e["nfe"], e["value"]) for e in index["front"]} == front
    for entry in index["front"]:
        exported = load_schedule(folder / entry["file"])
        assert exported.sampler["nfe"] == entry["nfe"]
        assert exported.value == entry["value"]
        assert exported.study["trial"] == entry["trial"]


def test_confirmation_rescores_the_top_trials_on_fresh_seeds(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    args = [*tiny_overrides, "search.steps=[2,3]", "search.n_startup_trials=1",
            "search.n_trials=6", "search.confirm_top_k=1", "metric.fid_infinity=true"]
    first = run_cli("sweep", *args)
    study, trials = read_sweep(first, out)
    assert "confirming" in first.stdout + first.stderr
    records = {int(k.rsplit("/", 1)[1]): v for k, v in study_attrs(study).items()
               if k.startswith("confirm/30@24/")}
    for cell in study.cells:  # optuna studies and the dashboard list a handful of keys
        assert set(cell.user_attrs) <= SHOWN and len(str(cell.user_attrs)) < 200
    expected = set()
    for nfe in (3, 5):
        at = sorted((t for t in trials if t.user_attrs["nfe"] == nfe), key=lambda t: t.value)
        expected |= {t.number for t in at if t.user_attrs.get("baseline")}
        tuned = [t.number for t in at if not t.user_attrs.get("baseline")]
        expected |= set(tuned[:1])
    assert set(records) == expected
    assert all(r["n_samples"] == 30 and r["seed_start"] == 24 for r in records.values())
    assert all(isinstance(r["score_infinity"], float) for r in records.values())
    # every candidate is scored on the second ruler too, from the same images
    assert all(set(r["metrics"]) == {"digits_fid", "digits_fd_ae"} for r in records.values())
    assert all(r["metrics"]["digits_fid"]["score"] == r["score"] for r in records.values())

    folder = out / "exports" / "digits-heun-linear"
    for nfe in (3, 5):
        record = yaml.safe_load((folder / f"nfe{nfe:03d}.yaml").read_text())
        score, trial = record["score"], study.trials[record["study"]["trial"]]
        assert score["confirmed"] and score["value"] == records[trial.number]["score"]
        assert score["value"] == min(records[n]["score"] for n in records
                                     if study.trials[n].user_attrs["nfe"] == nfe)
        assert score["search"]["value"] == trial.value
        assert score["score_infinity"] == records[trial.number]["score_infinity"]
        assert score["search"]["seeds"]["stop"] <= score["seeds"]["start"]  # fresh seeds
        second = score["metrics"]["digits_fd_ae"]
        assert second["value"] == records[trial.number]["metrics"]["digits_fd_ae"]["score"]
        if not record["study"]["is_baseline"]:  # the change on the same seeds, its interval
            assert score["delta"] == pytest.approx(score["value"] - score["baseline"])
            low, high = score["delta_ci95"]
            assert low < score["delta"] < high and score["significant"] == (high < 0)
            assert second["delta"] == pytest.approx(second["value"] - second["baseline"])
            low, high = second["delta_ci95"]
            assert low < second["delta"] < high and second["worse"] == (low > 0)
            reverses = second["worse"] and score["delta"] < 0
            assert score["reversed"] == (["digits_fd_ae"] if reverses else [])
    # each confirmed trial's scores are its optuna-dashboard note, beside the trial
    from optuna_dashboard import get_note

    for number, record in records.items():
        where = study.where(number)
        cell = study.cells[where.cell]
        frozen = cell.get_trials(deepcopy=False)[where.number]
        note = get_note(optuna.trial.Trial(cell, frozen._trial_id))
        assert note.startswith("**Confirmed** on 30 fresh images (seeds 24..53)")
        assert f"| digits FID | {record['score']:.6g} |" in note and "digits FD-AE" in note
    # best.yaml: the lowest FID among sure improvements that hold on the second ruler and,
    # where the change is not sure or reverses there, the baseline of that NFE
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["score"].get("significant") is not False and not best["score"].get("reversed")
    allowed = []
    for nfe in (3, 5):
        score = yaml.safe_load((folder / f"nfe{nfe:03d}.yaml").read_text())["score"]
        sure = score.get("significant") is not False and not score.get("reversed")
        allowed.append(score["value"] if sure else score["baseline"])
    assert best["score"]["value"] == min(allowed)

    # a resumed sweep scores nothing again; `sample` reproduces the confirmed score
    again = run_cli("sweep", *args)
    assert again.returncode == 0 and "confirming" not in again.stdout + again.stderr
    assert {k: v for k, v in study_attrs(load(out)).items() if k.startswith("confirm/")} == {
        f"confirm/30@24/{n}": r for n, r in records.items()}
    sample = run_cli("sample", *tiny_overrides, f"schedule={folder / 'nfe005.yaml'}",
                     "metric.fid_infinity=true")
    assert sample.returncode == 0, sample.stderr
    fid, exported = map(float, re.search(r"FID (\S+) \(exported: (\S+)\)", sample.stdout).groups())
    assert fid == pytest.approx(exported, rel=1e-4)
    infinity = float(re.search(r"FID-infinity (\S+)", sample.stdout).group(1))
    assert infinity == pytest.approx(
        yaml.safe_load((folder / "nfe005.yaml").read_text())["score"]["score_infinity"],
        rel=1e-4)


def test_presets_search_the_solver_and_the_discretization(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", *tiny_overrides, "sweeps=[digits,samplers,disc_rho]",
                     "search.steps=[2]", "search.n_trials=2", "search.confirm_top_k=0")
    study, trials = read_sweep(result, out)
    assert sorted(c.study_name for c in study.cells) == [
        f"digits-heun-linear/{s}-steps2" for s in ("dpmpp_2m", "euler", "heun")]
    baselines = [t for t in trials if t.user_attrs.get("baseline")]
    assert sorted(t.user_attrs["sampler"]["name"] for t in baselines) == [
        "dpmpp_2m", "euler", "heun"]
    assert all(t.params["disc_rho"] == 7.0 for t in baselines)
    assert len(trials) == 6  # two per cell
    for t in trials:
        assert 3.0 <= t.params["disc_rho"] <= 12.0
        assert t.user_attrs["sampler"]["name"] in study.cell_of(t.number).study_name
        assert t.user_attrs["sampler"]["rho"] == t.params["disc_rho"]
        assert t.user_attrs["nfe"] == nfe_of(t.user_attrs["sampler"]["name"], 2)
    for path in (out / "exports" / "digits-heun-linear").glob("nfe*.yaml"):
        record = yaml.safe_load(path.read_text())
        trial = study.trials[record["study"]["trial"]]
        assert record["study"]["cell"] == study.cell_of(trial.number).study_name
        assert record["sampler"]["name"] == trial.user_attrs["sampler"]["name"]
        assert record["sampler"]["nfe"] == nfe_of(record["sampler"]["name"], 2)
