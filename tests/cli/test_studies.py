"""``studies``, ``show``, ``compare``, ``studies delete`` and ``--study``: sweeps made by hand.

The sweeps are real Optuna studies in a real SQLite file, written the way a sweep writes them
(cell studies with the group's attributes, trials with the objective's records), without
sampling a single image, so every number the commands print is known here.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution

from skipsearch.cli import main
from skipsearch.search.catalog import catalog, recorded_protocols
from skipsearch.search.group import load_sweep
from skipsearch.tuning.schedule import SkipSchedule
from tests.conftest import run_cli

LEVELS = [0, 1, 2]  # three skips, bottom to top
SKIPS = [{"index": i, "level": lv, "resolution": 4 << i, "skip_channels": 8,
          "in_channels": 16, "module_name": f"dec.{i}"} for i, lv in enumerate(LEVELS)]
SAMPLER = {"name": "heun", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "options": {},
           "sigmas": None}
SPACE = {"rho_top": [0.5, 1.2], "rho_bottom": [0.5, 1.2]}
DISTS = {k: FloatDistribution(*v) for k, v in SPACE.items()}


def provenance(model: str, n_samples: int = 64, metric: str = "fid") -> dict:
    """The cell attributes a sweep records (``study_provenance``), with made-up hashes.

    ``fid`` on the digits classifier is how sweeps before the metric registry recorded it.
    """
    return {"skipsearch_version": "0.1.0", "model_name": model, "model_sha256": "ab" * 32,
            "sampler": SAMPLER, "parameterization": "linear", "skips": SKIPS,
            "metric": {"metric": metric, "feature_extractor": "digits-classifier",
                       "feature_sha256": "cd" * 32, "reference": "digits"},
            "precision": {"network": "fp32", "sampler": "float64", "noise_device": "cpu"},
            "n_samples": n_samples, "seed_start": 0}


def add_trial(study: optuna.Study, steps: int, score: float, top: float, bottom: float,
              baseline: bool = False, stages: str = "stage_fids") -> None:
    """A completed trial with the records the objective writes (``stage_fids``: older ones)."""
    schedule = SkipSchedule.from_params("linear", {"rho_top": top, "rho_bottom": bottom},
                                        LEVELS)
    attrs = {"nfe": 2 * steps - 1, "steps": steps, "sampler": SAMPLER,
             "coefficients": list(schedule.coefficients), "schedule": schedule.to_dict(),
             stages: [[64, score]], "n_samples": 64, "seconds": 1.0}
    if baseline:
        attrs.update(baseline=True, baseline_key=f"heun-steps{steps}")
    study.add_trial(optuna.trial.create_trial(
        params={"rho_top": top, "rho_bottom": bottom}, distributions=DISTS, value=score,
        user_attrs=attrs))


def make_sweep(url: str, name: str, model: str, cells: dict[int, list[tuple]],
               metric: str = "fid", direction: str = "minimize") -> None:
    """Sweep ``name``: per step count, trials (score, rho_top, rho_bottom), the first a baseline.

    ``metric`` ``fid`` writes the records of sweeps before the metric registry (FID on the
    digits classifier, ``stage_fids``); any other, those of today's (``stage_scores``).
    """
    stages = "stage_fids" if metric == "fid" else "stage_scores"
    for steps, trials in cells.items():
        study = optuna.create_study(study_name=f"{name}/heun-steps{steps}", storage=url,
                                    direction=direction)
        for key, value in {**provenance(model, metric=metric), "sweep": name,
                           "cell": {**SAMPLER, "steps": steps}, "steps": steps,
                           "nfe": 2 * steps - 1, "space": SPACE}.items():
            study.set_user_attr(key, value)
        for i, (score, top, bottom) in enumerate(trials):
            add_trial(study, steps, score, top, bottom, baseline=i == 0, stages=stages)


def confirm(url: str, name: str, steps: int, records: dict[int, dict]) -> None:
    """Final-score records ``confirm/128@64/<cell trial>`` as ``confirm_top`` stores them.

    Records with ``fid`` are those of sweeps before the metric registry (``fid_infinity``).
    """
    study = optuna.load_study(study_name=f"{name}/heun-steps{steps}", storage=url)
    for number, record in records.items():
        infinity = {"fid_infinity": None} if "fid" in record else {"score_infinity": None}
        study.set_user_attr(f"confirm/128@64/{number}",
                            {"n_samples": 128, "seed_start": 64, **infinity, **record})


def metric_record(score: float, delta: float | None = None, ci: tuple | None = None,
                  higher: bool = False) -> dict:
    """One metric's entry of a confirmation record (``metrics``), paired when ``delta``."""
    if delta is None:
        return {"score": score, "higher_is_better": higher}
    low, high = ci
    worse = high < 0 if higher else low > 0
    return {"score": score, "higher_is_better": higher, "delta": delta,
            "delta_ci95": list(ci), "delta_blocks": 10, "worse": worse}


def confirm_two_metrics(url: str, name: str, steps: int, base: int, tuned: int,
                        primary: tuple, second: tuple) -> None:
    """Today's records of a baseline and a tuned trial on ``digits_fid`` and ``digits_fd_ae``.

    ``primary`` and ``second``: (baseline score, tuned score, (low, high) of the change).
    """
    (b1, t1, ci1), (b2, t2, ci2) = primary, second
    first, other = metric_record(t1, t1 - b1, ci1), metric_record(t2, t2 - b2, ci2)
    confirm(url, name, steps, {
        base: {"score": b1, "metric": "digits_fid",
               "metrics": {"digits_fid": metric_record(b1), "digits_fd_ae": metric_record(b2)}},
        tuned: {"score": t1, "metric": "digits_fid", "delta": t1 - b1, "delta_ci95": list(ci1),
                "delta_blocks": 10, "delta_baseline": base,
                "metrics": {"digits_fid": first, "digits_fd_ae": other},
                "reversed": ["digits_fd_ae"] if other["worse"] and t1 < b1 else []}})


@pytest.fixture
def store(tmp_path) -> dict:
    """Two sweeps in one SQLite file: 'alpha' (digits, two cells, confirmed) and 'beta'."""
    url = f"sqlite:///{tmp_path}/studies.db"
    make_sweep(url, "alpha", "digits", {2: [(30.0, 1.0, 1.0), (25.0, 0.9, 0.8),
                                            (27.0, 0.8, 0.7)],
                                        3: [(20.0, 1.0, 1.0), (18.5, 0.95, 0.9)]})
    # trial 1 of steps2 confirmed better than its baseline (trial 0), with an interval
    confirm(url, "alpha", 2, {0: {"fid": 31.0}, 1: {"fid": 26.0, "delta": -5.0,
                                                     "delta_ci95": [-6.0, -4.0]}})
    make_sweep(url, "beta", "digits", {2: [(29.0, 1.0, 1.0), (24.0, 0.7, 0.6)]})
    return {"url": url, "tmp": tmp_path,
            "over": [f"storage.url={url}", f"out_dir={tmp_path}/out"]}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_studies_lists_each_sweep_with_its_counts_and_best_per_nfe(store, capsys):
    code, out, err = run(capsys, "studies", *store["over"])
    assert code == 0, err
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[1:-1]]
            for line in out.splitlines() if line.count("│") > 3 and "study" not in line}
    # alpha: steps2 ranked by the confirmed 26.0 (trial 1), steps3 by search FID 18.5; its
    # records are those of sweeps before the metric registry (fid, stage_fids)
    assert rows["alpha"] == ["alpha", "digits", "FID", "2", "5/5", "3: 26  5: 18.5", "-"]
    assert rows["beta"] == ["beta", "digits", "FID", "1", "2/2", "3: 24", "-"]


def test_catalog_reads_the_recorded_protocol(store):
    sweep = load_sweep(store["url"], "alpha")
    protocols = recorded_protocols(sweep)
    assert [(p.seed_range.count, p.seed_range.start) for p in protocols] == [(128, 64)]
    names = [e.name for e in catalog(optuna.storages.get_storage(store["url"]))]
    assert names == ["alpha", "beta"]


def test_show_prints_the_table_and_the_exports(store, capsys):
    code, out, err = run(capsys, "show", "alpha", *store["over"])
    assert code == 0, err
    assert "study alpha: FID per NFE (confirmed on 128 fresh images, searched on 64" in out
    lines = [line for line in out.splitlines() if line.count("│") > 5]
    three = next(c for c in (line.split("│") for line in lines) if c[1].strip() == "3")
    # NFE 3: baseline 31 confirmed, best 26 confirmed, change 26/31-1, delta and CI (older
    # records: fid keys, no other metric)
    assert [c.strip() for c in three[2:8]] == [
        "heun-steps2", "31", "26", f"{100 * (26 / 31 - 1):+.1f}%", "-5 [-6, -4]", "25"]
    assert "metric:  FID (fid, lower is better)\n" in out
    assert "reversed" not in out and "confirmed also" not in out
    assert "none in" in out and "export --study alpha" in out
    code, _, err = run(capsys, "export", "--study", "alpha", *store["over"])
    assert code == 0, err
    code, out, _ = run(capsys, "show", "alpha", *store["over"])
    folder = store["tmp"] / "out" / "exports" / "alpha"
    assert f"exports: {folder}: best.yaml pareto.yaml nfe003.yaml nfe005.yaml" in \
        " ".join(out.split())


def test_show_finds_the_exports_where_the_sweep_wrote_them(store, capsys):
    """Exports written under another out_dir than the one ``show`` is given."""
    elsewhere = store["tmp"] / "elsewhere"
    code, _, err = run(capsys, "export", "--study", "alpha", *store["over"],
                       f"export_dir={elsewhere}")
    assert code == 0, err
    code, out, _ = run(capsys, "show", "alpha", *store["over"])
    assert code == 0
    assert f"exports: {elsewhere / 'alpha'}: best.yaml pareto.yaml nfe003.yaml nfe005.yaml" \
        in " ".join(out.split())


def test_compare_puts_two_sweeps_side_by_side(store, capsys):
    code, out, err = run(capsys, "compare", "alpha", "beta", *store["over"])
    assert code == 0, err
    rows = {c[1].strip(): [x.strip() for x in c[2:-1]]
            for c in (line.split("│") for line in out.splitlines() if line.count("│") > 5)
            if c[1].strip().isdigit()}
    # alpha's NFE 3 is confirmed on 128 images, beta's a search score on 64: no B - A
    assert rows["3"] == ["26", "24", "-", "31", "29", "-5 [-6, -4]", "-", "-", "-"]
    assert rows["5"] == ["18.5", "-", "-", "20", "-", "-", "-", "-", "-"]
    assert "alpha (A) vs beta (B): FID per NFE" in out
    assert "A: FID (fid) of digits-classifier (sha256 cdcdcdcdcdcd) against digits; " \
           "confirmed on 128 images from seed 64; searched on 64 images from seed 0" in out
    assert "B: FID (fid) of digits-classifier (sha256 cdcdcdcdcdcd) against digits; " \
           "searched on 64 images from seed 0" in out
    assert "B - A is left out where one score is confirmed and the other a search score" in out


def test_compare_subtracts_only_scores_measured_the_same_way(store, capsys):
    url = store["url"]
    make_sweep(url, "delta", "digits", {2: [(28.0, 1.0, 1.0), (22.5, 0.7, 0.6)]})
    code, out, err = run(capsys, "compare", "beta", "delta", *store["over"])
    assert code == 0, err
    assert table_rows(out)["3"][:3] == ["24", "22.5", "-1.5"]  # both searched on seeds 0..63
    study = optuna.load_study(study_name="delta/heun-steps2", storage=url)
    study.set_user_attr("n_samples", 32)  # delta searched on 32 images instead
    code, out, err = run(capsys, "compare", "beta", "delta", *store["over"])
    assert table_rows(out)["3"][:3] == ["24", "22.5", "-"]
    assert "B - A is left out where the search images or seeds differ" in out


def table_rows(out: str) -> dict[str, list[str]]:
    """The cells of every table row of ``out`` whose first cell is a number, by that number."""
    rows = {}
    for cells in (line.split("│") for line in out.splitlines() if line.count("│") > 5):
        if cells[1].strip().isdigit():
            rows[cells[1].strip()] = [c.strip() for c in cells[2:-1]]
    return rows


@pytest.fixture
def reversal(store) -> dict:
    """``store`` plus 'gamma', searched on digits_fid and confirmed on digits_fd_ae too.

    At NFE 3 the tuned trial gains on digits FID (-5 [-6, -4]) and loses on digits FD-AE
    (+0.7 [+0.2, +1.2]): a reversal. At NFE 5 it gains on both.
    """
    url = store["url"]
    make_sweep(url, "gamma", "digits", {2: [(30.0, 1.0, 1.0), (25.0, 0.9, 0.8)],
                                        3: [(20.0, 1.0, 1.0), (18.5, 0.95, 0.9)]},
               metric="digits_fid")
    confirm_two_metrics(url, "gamma", 2, 0, 1, (31.0, 26.0, (-6.0, -4.0)),
                        (4.0, 4.7, (0.2, 1.2)))
    confirm_two_metrics(url, "gamma", 3, 0, 1, (21.0, 19.0, (-3.0, -1.0)),
                        (3.0, 2.5, (-0.9, -0.1)))
    return store


def test_show_names_each_confirm_metric_and_a_reversal(reversal, capsys):
    code, out, err = run(capsys, "show", "gamma", *reversal["over"])
    assert code == 0, err
    assert "study gamma: digits FID per NFE (confirmed on 128 fresh images" in out
    header = next(line for line in out.splitlines() if "digits FD-AE change" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]][5:7] == [
        "change [95% CI]", "digits FD-AE change [95% CI]"]
    rows = table_rows(out)
    assert rows["3"][1:6] == ["31", "26", f"{100 * (26 / 31 - 1):+.1f}%", "-5 [-6, -4]",
                              "+0.7 [+0.2, +1.2] worse"]
    assert rows["5"][4:6] == ["-2 [-3, -1]", "-0.5 [-0.9, -0.1]"]
    assert "metric:  digits FID (digits_fid, lower is better); confirmed also on digits " \
           "FD-AE" in out
    flags = [line for line in out.splitlines() if line.startswith("reversed on")]
    assert flags == ["reversed on digits FD-AE: NFE 3 (trial heun-steps2#1) gains on digits "
                     "FID but is worse on digits FD-AE (95% interval on the worse side)"]


def test_studies_and_compare_flag_a_reversal(reversal, capsys):
    code, out, err = run(capsys, "studies", *reversal["over"])
    assert code == 0, err
    row = next(line for line in out.splitlines() if "│ gamma" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == [
        "gamma", "digits", "digits FID", "2", "4/4", "3: 26  5: 19", "3"]
    code, out, err = run(capsys, "compare", "alpha", "gamma", *reversal["over"])
    assert code == 0, err
    # A's records are older (fid keys), B's today's: both show, and B - A compares them
    # only if they searched one metric (fid and digits_fid are two)
    assert "alpha (A) vs gamma (B): A on FID, B on digits FID per NFE" in out
    assert "B - A is left out" in out
    rows = table_rows(out)
    assert rows["3"] == ["26", "26", "-", "31", "31", "-5 [-6, -4]", "-5 [-6, -4]", "-",
                         "digits FD-AE"]
    assert rows["5"][-2:] == ["-", "-"]


def test_a_maximised_metric_ranks_the_highest_score_best(store, capsys):
    """CLIP score is higher-is-better: the best trial, the front and the change follow it."""
    url = store["url"]
    make_sweep(url, "clip", "digits", {2: [(30.0, 1.0, 1.0), (25.0, 0.9, 0.8),
                                           (34.0, 0.8, 0.7)],
                                       3: [(29.0, 1.0, 1.0), (33.0, 0.95, 0.9)]},
               metric="clip_score", direction="maximize")
    code, out, err = run(capsys, "studies", *store["over"])
    assert code == 0, err
    row = next(line for line in out.splitlines() if "│ clip" in line)
    assert [c.strip() for c in row.split("│")[1:-1]][2:] == [
        "CLIP score", "2", "5/5", "3: 34  5: 33", "-"]
    code, out, err = run(capsys, "show", "clip", *store["over"])
    assert code == 0, err
    assert "study clip: CLIP score per NFE" in out
    assert "metric:  CLIP score (clip_score, higher is better)" in out
    rows = table_rows(out)
    # NFE 3: trial 2 (34) beats the baseline (30); NFE 5 (33) is worse than NFE 3's 34
    assert rows["3"][1:4] == ["30", "34", f"{100 * (34 / 30 - 1):+.1f}%"]
    assert (rows["3"][-3], rows["3"][-2]) == ("*", "heun-steps2#2")
    assert rows["5"][-3] == ""


def test_delete_with_yes_leaves_the_other_sweep(store, capsys):
    code, out, err = run(capsys, "studies", "delete", "alpha", "--yes", *store["over"])
    assert code == 0, err
    assert "deleted sweep alpha: 2 cell studies, 5 trials" in out
    storage = optuna.storages.get_storage(store["url"])
    assert sorted(s.study_name for s in storage.get_all_studies()) == ["beta/heun-steps2"]
    assert len(load_sweep(storage, "beta").trials) == 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_delete_asks_on_a_terminal_and_refuses_without_one(store, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run(capsys, "studies", "delete", "alpha", *store["over"])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "add --yes" in err
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, out, _ = run(capsys, "studies", "delete", "alpha", *store["over"])
    assert code == 1 and "delete sweep alpha (2 cells, 5 trials) from sqlite:///" in out
    assert len(load_sweep(store["url"], "alpha").cells) == 2
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    code, out, _ = run(capsys, "studies", "delete", "alpha", *store["over"])
    assert code == 0 and "deleted sweep alpha" in out
    with pytest.raises(KeyError):
        load_sweep(store["url"], "alpha")


def test_delete_never_prints_a_password(tmp_path, capsys):
    url = "postgresql+psycopg://user:hunter2@127.0.0.1:1/db"
    code, out, err = run(capsys, "studies", "delete", "x", "--yes", f"storage.url={url}")
    assert code == 2 and "hunter2" not in out + err and "***" in err


@pytest.mark.parametrize("argv, words", [
    (["show", "nope"], ["no such study", "alpha, beta"]),
    (["compare", "alpha", "nope"], ["no such study", "alpha, beta"]),
    (["studies", "delete", "nope", "--yes"], ["no such study", "alpha, beta"]),
    (["export", "--study", "nope"], ["no such study", "alpha, beta"]),
    (["dashboard", "--study", "nope"], ["no such study", "alpha, beta"]),
    (["report", "--study", "nope"], ["no such study", "alpha, beta"]),
    (["show"], ["missing STUDY"]),
    (["compare", "alpha"], ["missing B"]),
    (["show", "alpha", "beta"], ["unexpected argument 'beta'"]),
    (["studies", "frobnicate"], ["unknown subcommand 'frobnicate'"]),
    (["studies", "delete"], ["missing STUDY"]),
    (["show", "alpha", "--force"], ["unknown flag '--force'"]),
    (["studies", "--cfg", "job"], ["unknown flag '--cfg'"]),
    (["export", "--study"], ["--study needs a study name"]),
    (["export", "--study", "alpha", "search.study_name=beta"], ["give the study once"]),
])
def test_bad_input_is_one_line_and_exit_two(store, capsys, argv, words):
    code, out, err = run(capsys, *argv, *store["over"])
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("skipsearch: error: "), err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("command", [["studies"], ["show", "alpha"], ["compare", "a", "b"],
                                     ["export", "--study", "alpha"]])
def test_a_missing_storage_is_an_error_and_is_not_created(tmp_path, capsys, command):
    db = tmp_path / "none" / "studies.db"
    code, _, err = run(capsys, *command, f"storage.url=sqlite:///{db}")
    assert code == 2 and "no such study file" in err
    assert not db.exists() and not db.parent.exists()


def written(folder: Path) -> dict[str, dict]:
    """Every exported file, without its time of writing."""
    out = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        data.pop("created", None)
        out[path.name] = data
    return out


def test_export_with_study_writes_what_the_full_overrides_write(store, capsys):
    full = [*store["over"], "search.study_name=alpha", "metric.n_samples=64",
            "metric.final_samples=128", "metric.final_seed_start=64",
            f"export_dir={store['tmp']}/full"]
    code, _, err = run(capsys, "export", *full)
    assert code == 0, err
    code, _, err = run(capsys, "export", "--study", "alpha", *store["over"],
                       f"export_dir={store['tmp']}/short")
    assert code == 0, err
    by_study = written(store["tmp"] / "short" / "alpha")
    assert by_study == written(store["tmp"] / "full" / "alpha")
    # the confirmed score won at NFE 3, as the full overrides rank it
    assert by_study["nfe003.yaml"]["score"]["value"] == 26.0
    assert by_study["nfe003.yaml"]["score"]["confirmed"] is True
    # without the sweep's metric overrides the confirmed records are not found
    code, _, err = run(capsys, "export", *store["over"], "search.study_name=alpha",
                       f"export_dir={store['tmp']}/plain")
    assert code == 0, err
    assert written(store["tmp"] / "plain" / "alpha")["nfe003.yaml"]["score"]["value"] == 25.0


def test_report_with_study_fills_the_model_or_says_what_is_missing(store, capsys):
    from skipsearch.cli.studies import with_study

    args = with_study("report", ["--study", "alpha", *store["over"]])
    assert "model=digits" in args and "search.study_name=alpha" in args
    assert "metric.n_samples=64" in args and "metric.final_samples=128" in args
    assert with_study("dashboard", ["--study", "beta", *store["over"]]) == \
        [*store["over"], "search.study_name=beta"]
    jobs = with_study("export", ["--study", "alpha", "--multirun", "metric.final_samples=128,64",
                                 *store["over"]])
    assert "search.study_name=alpha" in jobs and "metric.n_samples=64" in jobs
    assert "metric.final_samples=128,64" in jobs  # the sweep over it is left to Hydra
    grid0 = with_study("report", ["--study=alpha", "report.grid=0", *store["over"]])
    assert not any(a.startswith("model=") for a in grid0)
    make_sweep(store["url"], "gamma", "edm", {2: [(9.0, 1.0, 1.0)]})
    code, _, err = run(capsys, "report", "--study", "gamma", *store["over"])
    assert code == 2 and err.count("\n") == 1
    assert "model edm" in err and "model.path" in err and "report.grid=0" in err


def test_an_older_single_study_is_listed_and_shown(store, capsys):
    """A study of an older skipsearch (every step count in one study, no cells) still shows."""
    study = optuna.create_study(study_name="old", storage=store["url"])
    for key, value in provenance("digits").items():
        study.set_user_attr(key, value)
    add_trial(study, 2, 40.0, 1.0, 1.0, baseline=True)
    add_trial(study, 2, 35.0, 0.9, 0.9)
    code, out, err = run(capsys, "studies", *store["over"])
    assert code == 0, err
    row = next(line for line in out.splitlines() if "│ old" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == [
        "old", "digits", "FID", "1 (one study)", "2/2", "3: 35", "-"]
    code, out, err = run(capsys, "show", "old", *store["over"])
    assert code == 0 and "study old: FID per NFE (64 images, 2 trials in 1 cell)" \
        in out, err


def test_delete_refuses_a_sweep_a_worker_runs_unless_forced(store, capsys):
    cell = optuna.load_study(study_name="alpha/heun-steps2", storage=store["url"])
    cell.ask()  # a worker's trial, running
    code, out, err = run(capsys, "studies", "delete", "alpha", "--yes", *store["over"])
    assert code == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith("skipsearch: error: "), err
    assert "sweep alpha has 1 running trial(s)" in err and "--force" in err
    assert len(load_sweep(store["url"], "alpha").trials) == 6  # kept, the running one too
    code, out, err = run(capsys, "studies", "delete", "alpha", "--yes", "--force",
                         *store["over"])
    assert code == 0 and "deleted sweep alpha: 2 cell studies, 6 trials" in out, err
    with pytest.raises(KeyError):
        load_sweep(store["url"], "alpha")


@pytest.fixture
def plain(store) -> dict:
    """``store`` plus a study made with Optuna itself: no sweep, model or seed records."""
    study = optuna.create_study(study_name="plain", storage=store["url"])
    for x in (0.2, 0.7):
        study.add_trial(optuna.trial.create_trial(
            params={"x": x}, distributions={"x": FloatDistribution(0.0, 1.0)}, value=x))
    return store


@pytest.mark.parametrize("argv", [["show", "plain"], ["export", "--study", "plain"],
                                  ["report", "--study", "plain"], ["compare", "alpha", "plain"],
                                  ["studies", "delete", "plain", "--yes"]])
def test_a_plain_optuna_study_is_named_not_a_sweep(plain, capsys, argv):
    code, out, err = run(capsys, *argv, *plain["over"])
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("skipsearch: error: "), err
    assert "search.study_name='plain': not a skipsearch sweep" in err and "alpha, beta" in err
    assert "plain" in [s.study_name for s in
                       optuna.storages.get_storage(plain["url"]).get_all_studies()]


def test_studies_leaves_a_plain_optuna_study_out_with_a_note(plain, capsys):
    code, out, err = run(capsys, "studies", *plain["over"])
    assert code == 0, err
    names = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 3]
    assert names == ["alpha", "beta"]
    assert out.strip().splitlines()[-1] == ("left out, not skipsearch sweeps (Optuna studies "
                                            "without a sweep's records): plain")


def test_a_sweep_never_takes_the_name_of_a_plain_optuna_study(plain, tiny_overrides):
    result = run_cli("sweep", *tiny_overrides, *plain["over"], "search.study_name=plain",
                     "search.steps=[2]", "search.n_trials=1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "skipsearch: error: search.study_name='plain': the storage holds an Optuna study of "
        "this name that is not a skipsearch sweep; pick another search.study_name")
    names = [s.study_name for s in optuna.storages.get_storage(plain["url"]).get_all_studies()]
    assert sorted(names) == ["alpha/heun-steps2", "alpha/heun-steps3", "beta/heun-steps2",
                             "plain"]


@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_show_prints_the_table_for_a_paper_or_a_sheet(reversal, capsys, fmt):
    code, out, err = run(capsys, "show", "gamma", f"--format={fmt}", *reversal["over"])
    assert code == 0, err
    if fmt == "csv":
        import csv
        import io

        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["nfe"] for r in rows] == ["3", "5"]
        assert float(rows[0]["best"]) == 26.0 and float(rows[0]["delta"]) == -5.0
        assert rows[0]["digits_fd_ae_worse"] == "True" and rows[0]["reversed"] == "digits_fd_ae"
        assert rows[0]["trial"] == "heun-steps2#1"
        return
    title = "study gamma: digits FID per NFE (confirmed on 128 fresh images, searched on 64"
    if fmt == "markdown":
        lines = out.splitlines()
        assert lines[0].startswith(f"*{title}") and lines[2].startswith("| NFE | cell |")
        assert "| 3 | heun-steps2 | 31 | 26 | -16.1% | -5 [-6, -4] | +0.7 [+0.2, +1.2] worse" \
            in out
    else:
        assert out.startswith("\\begin{table}") and "\\caption{study gamma: digits FID" in out
        assert "3 & heun-steps2 & 31 & 26 & -16.1\\% & -5 [-6, -4] & +0.7 [+0.2, +1.2] worse" \
            in out and "heun-steps2\\#1" in out


def test_show_refuses_an_unknown_format(store, capsys):
    code, _, err = run(capsys, "show", "alpha", "--format=html", *store["over"])
    assert code == 2 and "--format=html is not one of table, markdown, latex, csv" in err
    code, _, err = run(capsys, "show", "alpha", "--format", *store["over"])
    assert code == 2 and "--format needs a value" in err
