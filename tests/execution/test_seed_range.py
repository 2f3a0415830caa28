"""SeedRange: the seeds, the export's dict, overlap, and bad values refused."""

from __future__ import annotations

import pytest

from skipsearch.execution.seed_range import SeedRange


def test_seeds_stop_and_dict_round_trip():
    r = SeedRange(1000, 2000)
    assert r.stop == 3000 and r.seeds == range(1000, 3000) and len(r.seeds) == 2000
    assert r.to_dict() == {"start": 1000, "stop": 3000}
    assert SeedRange.from_dict({"start": 1000, "stop": 3000}) == r
    assert r.with_count(5).seeds == range(1000, 1005)
    assert r.with_count(2500).stop == 3500  # more than were scored: the range grows


@pytest.mark.parametrize("a, b, shared", [
    ((0, 1000), (1000, 2000), False), ((0, 1000), (999, 5), True),
    ((10, 5), (0, 10), False), ((10, 5), (0, 11), True), ((0, 100), (20, 5), True),
])
def test_overlap_matches_shared_seeds(a, b, shared):
    x, y = SeedRange(*a), SeedRange(*b)
    assert x.overlaps(y) == y.overlaps(x) == shared == bool(set(x.seeds) & set(y.seeds))


@pytest.mark.parametrize("start, count", [(-1, 5), (0, 0), (3, -2), (2**63 - 1, 2),
                                          (2**64, 1)])
def test_bad_ranges_are_refused(start, count):
    with pytest.raises(ValueError, match=r"start >= 0, count >= 1 and start \+ count <= 2\*\*63"):
        SeedRange(start, count)


def test_the_last_seed_below_2_to_the_63_is_allowed_and_torch_takes_it():
    import torch

    seeds = SeedRange(2**63 - 2, 2)
    assert seeds.stop == 2**63
    assert torch.Generator().manual_seed(seeds.seeds[-1]).initial_seed() == 2**63 - 1


def test_non_integers_are_refused():
    with pytest.raises(TypeError, match=r"SeedRange\.count"):
        SeedRange(0, 2.5)
    with pytest.raises(TypeError, match=r"SeedRange\.start"):
        SeedRange(True, 3)
