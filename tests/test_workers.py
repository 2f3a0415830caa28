"""Several worker processes on one study: every trial once, none lost."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.trial import TrialState

from skipsearch.search.study import make_storage

from .conftest import start_cli


def test_two_workers_share_one_journal_study(tiny_overrides, tmp_path):
    url = f"journal:///{tmp_path / 'study.log'}"
    args = [*tiny_overrides, f"storage.url={url}", "search.steps=[2,3]",
            "search.n_trials=8", "search.n_startup_trials=1", "search.confirm_top_k=0"]
    workers = [start_cli("sweep", *args) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    storage = make_storage(optuna_storage_cfg(url))
    study = optuna.load_study(study_name="digits-heun-linear", storage=storage)
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len(trials) >= 8  # the study reached its count (a worker may finish one more)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # each baseline ran to the end once; a second copy queued by the other worker is pruned
    baselines = Counter(t.user_attrs["baseline_key"] for t in complete
                        if t.user_attrs.get("baseline"))
    assert baselines == {"steps=2": 1, "steps=3": 1}
    for t in trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["duplicate_of"] < t.number
    # no two trials ran the same parameters (the sampler drew each one once)
    drawn = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(drawn)) == len(drawn)


def optuna_storage_cfg(url: str):
    """The storage group as the CLI sees it."""
    from omegaconf import OmegaConf

    return OmegaConf.create({"url": url, "heartbeat_interval": 60, "grace_period": 180,
                             "max_retry": 2})
