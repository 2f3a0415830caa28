"""Scores reused across sweeps, racing confirmation end to end, and where images went."""

from __future__ import annotations

import re
from collections import Counter

import optuna
import pytest
import yaml

from skipsearch.execution import evaluate as evaluate_module
from skipsearch.execution.seed_range import SeedRange
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.search import race as race_module
from skipsearch.search.group import load_sweep
from skipsearch.search.results import Protocol, confirmed
from skipsearch.search.reuse import Reuse, applied
from skipsearch.tuning.schedule import SkipSchedule
from tests.conftest import run_cli


@pytest.fixture
def drawn(monkeypatch) -> Counter:
    """Images generated, counted by (baseline or tuned, first seed of the batch's range)."""
    counts: Counter = Counter()
    real = evaluate_module.sample_batches

    def counting(model, schedule, sampler, seeds, *args, **kwargs):
        for chunk, images in real(model, schedule, sampler, seeds, *args, **kwargs):
            counts["baseline" if schedule.is_identity else "tuned"] += len(chunk)
            counts["search" if chunk[0] < 24 else "final"] += len(chunk)
            yield chunk, images

    monkeypatch.setattr(evaluate_module, "sample_batches", counting)
    monkeypatch.setattr(race_module, "sample_batches", counting)
    return counts


def images_line(out: str) -> dict[str, int]:
    """The summary's counts of images generated, by phase."""
    line = next(x for x in out.splitlines() if x.startswith("images:"))
    counts = {k: int(v.replace(",", "")) for k, v in
              re.findall(r"(search|confirmation|limit) ([\d,]+)", line)}
    counts["generated"] = int(re.match(r"images:\s+([\d,]+) generated", line)[1]
                              .replace(",", ""))
    return counts


def test_a_second_sweep_reuses_every_baseline_and_a_changed_key_recomputes(
        tiny_overrides, drawn):
    args = [*tiny_overrides, "search.steps=[2,3]", "search.n_trials=3",
            "search.confirm_top_k=1", "search.confirm_blocks=3", "search.race=false",
            "search.limit_steps=[4]"]
    first = run_cli("sweep", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    spent = images_line(first.stdout)
    # the summary counts every image the sweep made, and where it went
    assert spent["generated"] == drawn["baseline"] + drawn["tuned"]
    assert spent["search"] == drawn["search"] and spent["generated"] == sum(
        spent[k] for k in ("search", "confirmation", "limit"))
    assert spent["limit"] == 30 and drawn["baseline"] == 2 * 24 + 2 * 30 + 30
    drawn.clear()

    second = run_cli("sweep", *args, "search.study_name=again", "search.seed=7")
    assert second.returncode == 0, second.stderr[-3000:]
    assert drawn["baseline"] == 0  # search, confirmation and limit baselines: all stored
    assert drawn["tuned"] > 0
    assert "taken from stored scores this run" in second.stdout
    assert images_line(second.stdout)["limit"] == 0
    drawn.clear()

    third = run_cli("sweep", *args, "search.study_name=longer", "metric.final_samples=36")
    assert third.returncode == 0, third.stderr[-3000:]
    assert drawn["baseline"] == 2 * 36 + 36  # the final seeds changed: made again ...
    assert drawn["search"] == 2 * 24 * 2  # ... while the search baselines were not: 2 tuned
    drawn.clear()

    off = run_cli("sweep", *args, "search.study_name=off", "search.reuse=false")
    assert off.returncode == 0, off.stderr[-3000:]
    # everything made again, and the limit's answer pairs with the best baseline made once more
    assert drawn["baseline"] == 2 * 24 + 2 * 30 + 30 + 30


def test_the_windows_baseline_comes_from_the_sweeps_storage(tiny_overrides, drawn, tmp_path):
    first = run_cli("sweep", *tiny_overrides, "search.steps=[4]", "search.n_trials=2",
                    "search.confirm_top_k=0")
    assert first.returncode == 0, first.stderr[-3000:]
    drawn.clear()
    schedule = ["skip.params.rho_top=0.8", "skip.params.rho_bottom=0.9", "sampler.steps=4"]
    result = run_cli("windows", *tiny_overrides, *schedule, "windows.width=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert drawn["baseline"] == 0 and drawn["tuned"] > 0
    drawn.clear()
    fresh = run_cli("windows", *tiny_overrides, *schedule, "windows.width=2",
                    f"storage.url=sqlite:///{tmp_path / 'other.db'}")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert drawn["baseline"] == 24
    assert not (tmp_path / "other.db").exists()  # nothing created to look a score up


def test_a_race_stops_the_beaten_and_scores_the_survivors_on_every_block(drawn, tmp_path):
    # The bundled model at 5 NFE: its baseline is far behind any tuned schedule (digits FID
    # about 480 against 180), so a race tells them apart after a few blocks of 10 images.
    args = [f"out_dir={tmp_path / 'out'}", "logger=none", "device=cpu", "metric.n_samples=24",
            "metric.final_samples=240", "batch_size=40", "search.steps=[3]",
            "search.n_trials=4", "search.confirm_top_k=2", "search.confirm_blocks=6",
            "search.limit_steps=[]"]
    result = run_cli("sweep", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = load_sweep(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'out/studies.db'}"),
                       "digits-heun-linear")
    records = confirmed(sweep, Protocol(SeedRange(24, 240)))
    assert len(records) == 3
    stopped = {n: r for n, r in records.items() if "stopped" in r}
    assert stopped, records
    for r in stopped.values():
        assert r["images"] == r["stopped"]["images"] < 240
        # what a stopped one drew: its blocks, and the rest of the batch the last one ended in
        assert r["images"] <= r["generated"] < r["images"] + 40
        assert r["stopped"]["t"] > r["stopped"]["t_bound"]
    survivors = {n: r for n, r in records.items() if n not in stopped}
    assert survivors and all(r["images"] == 240 for r in survivors.values())
    assert images_line(result.stdout)["confirmation"] == sum(r["generated"]
                                                             for r in records.values())
    assert drawn["final"] == sum(r["generated"] for r in records.values())
    exported = yaml.safe_load(
        (tmp_path / "out" / "exports" / "digits-heun-linear" / "best.yaml").read_text())
    best = [n for n in survivors if sweep.trials[n].params == exported["schedule"]["params"]]
    assert len(best) == 1  # the export is a survivor, scored on every image

    # A second sweep's race takes the stored baseline and draws only blocks it never had
    before = next(r for n, r in records.items() if sweep.trials[n].params["rho_top"] == 1.0
                  and sweep.trials[n].params["rho_bottom"] == 1.0)
    drawn.clear()
    second = run_cli("sweep", *args, "search.study_name=again", "search.seed=3")
    assert second.returncode == 0, second.stderr[-3000:]
    again = load_sweep(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'out/studies.db'}"),
                       "again")
    now = next(r for n, r in confirmed(again, Protocol(SeedRange(24, 240))).items()
               if again.trials[n].user_attrs.get("baseline"))
    assert drawn["baseline"] == max(0, now["images"] - before["images"])
    assert "taken from stored scores this run" in second.stdout


def test_a_schedules_key_is_what_acts_on_the_images():
    linear = SkipSchedule((1.0, 1.0, 1.0), "linear", {"rho_top": 1.0, "rho_bottom": 1.0})
    assert applied(linear) == applied(SkipSchedule.identity(3))
    reuse = Reuse(None, {"model": "m"})
    spec = SamplerSpec("heun", 3)
    seeds = SeedRange(0, 10)
    one = reuse.keys(linear, spec, seeds, 0, {"fid": {"net": "a"}})
    assert one == reuse.keys(SkipSchedule.identity(3), spec, seeds, 0, {"fid": {"net": "a"}})
    for other in (reuse.keys(linear, SamplerSpec("heun", 4), seeds, 0, {"fid": {"net": "a"}}),
                  reuse.keys(linear, spec, SeedRange(1, 10), 0, {"fid": {"net": "a"}}),
                  reuse.keys(linear, spec, seeds, 2, {"fid": {"net": "a"}}),
                  reuse.keys(linear, spec, seeds, 0, {"fid": {"net": "b"}}),
                  Reuse(None, {"model": "n"}).keys(linear, spec, seeds, 0,
                                                    {"fid": {"net": "a"}})):
        assert other != one
    assert Reuse(None, {}, enabled=False).get(one) is None


def test_a_stored_race_goes_on_from_its_kept_sums_not_from_the_first_block(tmp_path):
    from skipsearch.cli import compose_config
    from skipsearch.configuration.build import build
    from skipsearch.execution.runtime import build_model, build_scorer
    from skipsearch.search.race import Entrant, Race

    settings = build(compose_config(["device=cpu", "logger=none"]), "sample")
    model = build_model(settings, "cpu")
    scorer = build_scorer(settings, "cpu", model)
    k = len(model.denoiser.skips)
    spec = SamplerSpec("heun", 3)
    seeds = SeedRange(5000, 400)
    study = optuna.create_study(storage=optuna.storages.RDBStorage("sqlite://"))
    reuse = Reuse(study._storage, {"model": "digits"}, folder=tmp_path / "scores")
    provenance = {scorer.primary: scorer.provenance()}

    def entrant(schedule: SkipSchedule, known: bool = False) -> Entrant:
        keys = reuse.keys(schedule, spec, seeds, 8, provenance)
        return Entrant(None, schedule.is_identity, schedule, spec, keys,
                       reuse.get(keys) if known else None)

    def race(racing: bool, with_reuse: Reuse | None) -> Race:
        return Race(model, scorer, (scorer.primary,), seeds.seeds, 8, 50, "cpu",
                    racing=racing, alpha=0.2, reuse=with_reuse)

    tuned = SkipSchedule((0.9,) * k)
    first = race(True, reuse)
    base, best = entrant(SkipSchedule.identity(k)), entrant(tuned)
    first.run([base, best], "cell")
    assert base.stop is not None and base.fed < 8  # the baseline is beaten early
    stored = first.values_at(base, base.fed)
    reuse.put(study, base.keys, {n: {**v, "what": "baseline"} for n, v in stored.items()})
    reuse.keep_state(base.keys, {n: base.state.accumulators[n].state()
                                 for n in first.names}, base.fed)

    again = entrant(SkipSchedule.identity(k), known=True)
    assert again.known_blocks == base.fed
    later = race(False, reuse)  # every block wanted now
    later.run([again], "cell")
    # only the blocks past the stored ones were drawn
    assert again.generated == 400 - first.bounds[base.fed]
    fresh = entrant(SkipSchedule.identity(k))
    plain = race(False, None)
    plain.run([fresh], "cell")
    ours, theirs = later.values_at(again, 8), plain.values_at(fresh, 8)
    assert ours[scorer.primary]["score"] == pytest.approx(theirs[scorer.primary]["score"],
                                                          rel=1e-9)
    assert ours[scorer.primary]["leave_out"] == pytest.approx(
        theirs[scorer.primary]["leave_out"], rel=1e-9)

    # a damaged file is ignored: the blocks are drawn again, from the first
    reuse.state_path(again.keys).write_bytes(b"not a safetensors file")
    broken = entrant(SkipSchedule.identity(k), known=True)
    race(False, reuse).run([broken], "cell")
    assert broken.generated == 400


def test_a_folder_that_cannot_hold_the_sums_loses_only_the_head_start(tmp_path, caplog):
    import torch

    blocked = tmp_path / "scores"
    blocked.write_text("a file where the folder should be")
    reuse = Reuse(None, {"model": "m"}, folder=blocked)
    keys = reuse.keys(SkipSchedule.identity(3), SamplerSpec("heun", 3), SeedRange(0, 10), 2,
                      {"fid": {"net": "a"}})
    state = {"sum": torch.zeros(2, 4), "outer": torch.zeros(2, 4, 4), "count": torch.zeros(2)}
    reuse.keep_state(keys, {"fid": state}, 1)  # no error: the scores themselves are stored
    assert "kept no per-block sums" in caplog.text
    assert reuse.state(keys) is None and blocked.read_text().startswith("a file")
