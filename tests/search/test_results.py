"""Study queries against FIDs worked out by hand: best, baselines, the front, final scores."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from skipsearch.execution.seed_range import SeedRange
from skipsearch.search.record import TrialRecord
from skipsearch.search.results import (
    Protocol,
    baseline_per_nfe,
    best_per_nfe,
    candidates,
    confirmed,
    final_or_search,
    final_score,
    final_seeds,
    pareto_front,
    trial_steps,
)

# (number, steps, FID, baseline) with Heun's NFE = 2 * steps - 1: NFE 3, 5 and 7
TRIALS = [(0, 2, 50.0, True), (1, 2, 40.0, False), (2, 2, 45.0, False),
          (3, 3, 30.0, True), (4, 3, 35.0, False), (5, 3, 32.0, False),
          (6, 4, 33.0, True), (7, 4, 31.0, False), (8, 4, 34.5, True)]
PROTOCOL = Protocol(SeedRange(100, 10))


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    """The trials above in a real SQLite study, with a pruned and a failed one in between."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/q.db")
    dist = {"rho": FloatDistribution(0.5, 1.5)}
    for number, steps, fid, baseline in TRIALS:
        record = TrialRecord(nfe=2 * steps - 1, steps=steps, sampler={"name": "heun"},
                             n_samples=12, baseline=baseline)
        study.add_trial(create_trial(params={"rho": 1.0 if baseline else 0.9}, distributions=dist,
                                     value=fid, user_attrs=record.to_attrs()))
        assert study.trials[-1].number == number
    for state in (TrialState.PRUNED, TrialState.FAIL):  # a low FID at a stage counts for nothing
        study.add_trial(create_trial(params={"rho": 0.8}, distributions=dist, state=state,
                                     intermediate_values={6: 1.0},
                                     user_attrs=TrialRecord(nfe=3, steps=2).to_attrs()))
    return study


def numbers(found: dict) -> dict[int, int]:
    return {nfe: t.number for nfe, t in found.items()}


def test_best_and_baseline_per_nfe_by_search_fid(study):
    # NFE 3: 40 (trial 1) beats 45 and the baseline 50; NFE 5: the baseline's 30 beats 32, 35;
    # NFE 7: 31 (trial 7); the better of the two baselines at NFE 7 is 33 (trial 6)
    assert numbers(best_per_nfe(study)) == {3: 1, 5: 3, 7: 7}
    assert numbers(baseline_per_nfe(study)) == {3: 0, 5: 3, 7: 6}
    assert [trial_steps(t) for t in best_per_nfe(study).values()] == [2, 3, 4]


def test_the_front_keeps_an_nfe_only_when_it_lowers_the_fid():
    # 40 at NFE 3, 30 at NFE 5 (lower: on it), 31 at NFE 7 (higher than at NFE 5: off)
    assert pareto_front({7: 31.0, 3: 40.0, 5: 30.0}) == [3, 5]
    assert pareto_front({3: 40.0, 5: 40.0, 9: 10.0}) == [3, 9]  # a tie does not lower it
    assert pareto_front({}) == []


def test_confirmed_scores_rank_before_search_fids(study):
    first, second, base = 1, 2, 0
    protocol = PROTOCOL
    assert protocol.prefix == "confirm/10@100/" and protocol.seeds == range(100, 110)
    for number, fid in ((first, 41.0), (second, 38.0), (base, 52.0)):
        study.set_user_attr(f"{protocol.prefix}{number}",
                            final_score(fid, None, protocol.seed_range))
    study.set_user_attr(f"confirm/20@100/{first}", final_score(1.0, None, SeedRange(100, 20)))
    scores = confirmed(study, protocol)
    assert sorted(scores) == sorted((first, second, base))  # the other protocol's is not read
    assert final_seeds(scores[second]) == SeedRange(100, 10)
    assert confirmed(study, None) == {}
    best = numbers(best_per_nfe(study, scores))
    # NFE 3: confirmed 38 (trial 2) beats confirmed 41 although its search FID was worse;
    # NFE 5 and 7 have no final score and keep the search's best
    assert best == {3: 2, 5: 3, 7: 7}
    trials = study.trials
    assert final_or_search(trials[second], scores) == 38.0
    assert final_or_search(trials[4], scores) == 35.0


def test_candidates_are_each_cells_top_tuned_and_its_baseline(study):
    # top 1 tuned per cell: 1 (NFE 3), 5 (NFE 5), 7 (NFE 7); the first-ranked baselines 0, 3, 6
    assert [t.number for t in candidates(study, 1)] == [0, 1, 3, 5, 6, 7]
