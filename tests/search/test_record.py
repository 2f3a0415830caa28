"""A trial's record: written and read through a real Optuna SQLite study, old studies included."""

from __future__ import annotations

import optuna
import pytest

from skipsearch.execution.seed_range import SeedRange
from skipsearch.search.record import (
    SHOWN,
    TrialRecord,
    search_seeds,
    set_study_attr,
    study_attrs,
    write,
)
from skipsearch.search.study import name_objectives

FULL = TrialRecord(nfe=7, steps=4, sampler={"name": "heun", "sigma_min": 0.002, "rho": 7.0},
                   coefficients=[0.9, 1.0], schedule={"coefficients": [0.9, 1.0]},
                   stage_fids=[[6, 41.5], [12, 38.25]], n_samples=12, seconds=1.5,
                   baseline=True, baseline_key="heun-steps4", warm_start_from="s/heun-steps3#2",
                   fail_reason="interrupted (Ctrl-C)", skipped="duplicate of trial 0",
                   duplicate_of=0)
# The attribute names studies on disk hold: the record must keep reading and writing them.
KEYS = ["nfe", "steps", "sampler", "coefficients", "schedule", "stage_fids", "n_samples",
        "seconds", "baseline", "baseline_key", "warm_start_from", "fail_reason", "skipped",
        "duplicate_of"]


def sqlite_study(tmp_path) -> optuna.Study:
    return optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/r.db")


def reloaded(tmp_path) -> list[optuna.trial.FrozenTrial]:
    """The trials as a fresh process reads them from the database."""
    return optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/r.db").trials


def test_every_field_survives_the_database(tmp_path):
    study = sqlite_study(tmp_path)
    trial = study.ask()
    write(trial, FULL)
    study.tell(trial, 38.25)
    frozen = reloaded(tmp_path)[0]
    assert sorted(frozen.user_attrs) == sorted(KEYS)
    assert frozen.user_attrs["nfe"] == 7 and frozen.user_attrs["baseline"] is True
    assert TrialRecord.of(frozen) == FULL


def test_a_record_written_in_steps_reads_back_whole(tmp_path):
    study = sqlite_study(tmp_path)
    trial = study.ask()
    write(trial, TrialRecord(nfe=3, steps=2, sampler={"name": "heun"}, coefficients=[1.0],
                             schedule={"coefficients": [1.0]}))
    stages: list[list[float]] = []
    for count, fid in ((6, 50.0), (12, 45.0)):  # as the objective records each stage
        stages.append([count, fid])
        write(trial, TrialRecord(stage_fids=stages, n_samples=count, seconds=0.0))
    study.tell(trial, 45.0)
    record = TrialRecord.of(reloaded(tmp_path)[0])
    assert (record.nfe, record.steps, record.n_samples, record.seconds) == (3, 2, 12, 0.0)
    assert record.stage_fids == [[6, 50.0], [12, 45.0]]
    assert record.baseline is False and record.duplicate_of is None


def test_an_old_trial_written_key_by_key_reads(tmp_path):
    """Studies from before the record: the same keys, set one by one, and a queued baseline."""
    study = sqlite_study(tmp_path)
    study.enqueue_trial({}, user_attrs={"baseline": True, "baseline_key": "heun-steps2"})
    trial = study.ask()
    for key, value in (("nfe", 3), ("steps", 2), ("sampler", {"name": "heun"}),
                       ("coefficients", [1.0, 1.0]), ("schedule", {"coefficients": [1.0, 1.0]}),
                       ("stage_fids", [[12, 44.0]]), ("n_samples", 12), ("seconds", 0.25)):
        trial.set_user_attr(key, value)
    study.tell(trial, 44.0)
    plain = study.ask()
    plain.set_user_attr("skipped", "surplus: the cell already has 1 of 1 trials")
    study.tell(plain, state=optuna.trial.TrialState.FAIL)
    first, second = (TrialRecord.of(t) for t in reloaded(tmp_path))
    assert first == TrialRecord(nfe=3, steps=2, sampler={"name": "heun"},
                                coefficients=[1.0, 1.0], schedule={"coefficients": [1.0, 1.0]},
                                stage_fids=[[12, 44.0]], n_samples=12, seconds=0.25,
                                baseline=True, baseline_key="heun-steps2")
    assert second == TrialRecord(skipped="surplus: the cell already has 1 of 1 trials")


def test_unset_fields_are_left_out_and_zeros_are_kept():
    assert TrialRecord().to_attrs() == {}
    assert TrialRecord(seconds=0.0, duplicate_of=0).to_attrs() == {"seconds": 0.0,
                                                                   "duplicate_of": 0}
    assert list(FULL.to_attrs()) == KEYS


@pytest.mark.parametrize("attrs, n, seeds", [
    ({"seed_start": 10, "n_samples": 24}, None, SeedRange(10, 24)),
    ({"seed_start": 10, "n_samples": 24}, 12, SeedRange(10, 12)),  # a trial's own count
    ({"n_samples": 24}, None, None), ({"seed_start": "10", "n_samples": 24}, None, None),
    ({"seed_start": 0, "n_samples": 0}, None, None),
])
def test_search_seeds_from_the_provenance(attrs, n, seeds):
    assert search_seeds(attrs, n) == seeds


def test_a_study_shows_few_user_attributes_and_stores_the_rest_out_of_the_way(tmp_path):
    study = sqlite_study(tmp_path)
    record = {"score": 3.5, "metrics": {"digits_fd_ae": {"score": 1.25}}}
    set_study_attr(study, "sweep", "s")
    set_study_attr(study, "nfe", 7)
    set_study_attr(study, "skips", [{"level": 0, "channels": 32}] * 6)
    set_study_attr(study, "confirm/30@24/0", record)
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/r.db")
    assert again.user_attrs == {"sweep": "s", "nfe": 7}  # what optuna studies lists
    attrs = study_attrs(again)
    assert attrs["confirm/30@24/0"] == record and attrs["skips"][0]["channels"] == 32
    storage = optuna.storages.get_storage(f"sqlite:///{tmp_path}/r.db")
    frozen = next(s for s in storage.get_all_studies() if s.study_name == "s")
    assert study_attrs(frozen) == attrs
    assert {"sweep", "nfe", "steps", "model_name", "skipsearch_version"} == SHOWN


def test_a_study_that_kept_everything_as_user_attributes_reads_and_takes_new_records(tmp_path):
    study = sqlite_study(tmp_path)
    study.set_user_attr("skips", [1, 2])  # as skipsearch wrote every key before
    study.set_user_attr("confirm/30@24/0", {"score": 1.0})
    set_study_attr(study, "confirm/30@24/0", {"score": 2.0})  # a resumed sweep's new record
    attrs = study_attrs(study)
    assert attrs["skips"] == [1, 2] and attrs["confirm/30@24/0"] == {"score": 2.0}
    # Optuna's own system attributes (the objectives' names) are not skipsearch's
    name_objectives(study, ["digits_fid"])
    assert not any("metric_names" in k for k in study_attrs(study))
