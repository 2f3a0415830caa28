"""The sweep table's title counts the trials that count: skipped ones are left out."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from skipsearch.cli.tables import plural, trial_count
from skipsearch.search.group import load_sweep
from skipsearch.search.record import GROUP_ATTR, TrialRecord, write


def test_the_count_leaves_out_skipped_trials_and_names_failed_ones(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="s/cell", storage=url)
    study.set_user_attr(GROUP_ATTR, "s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)  # 3 complete
    pruned = study.ask()
    study.tell(pruned, state=TrialState.PRUNED)
    skipped = study.ask()
    write(skipped, TrialRecord(skipped="surplus: the cell already has 4 of 4 trials"))
    study.tell(skipped, state=TrialState.FAIL)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    assert trial_count(load_sweep(url, "s")) == "4 trials (1 failed)"
    study.tell(study.ask(), state=TrialState.FAIL)
    assert trial_count(load_sweep(url, "s")) == "4 trials (2 failed)"


def test_a_sweep_without_failures_says_only_how_many(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="s/cell", storage=url)
    study.set_user_attr(GROUP_ATTR, "s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert trial_count(load_sweep(url, "s")) == "2 trials"


def test_counts_read_as_english():
    assert [plural(n, "cell") for n in (0, 1, 2)] == ["0 cells", "1 cell", "2 cells"]
