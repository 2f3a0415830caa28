"""Skip-Tuning, FreeU and both: the same search machinery, side by side on the same seeds."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import yaml

from skipsearch.cli.sweep import check_method
from skipsearch.configuration.errors import ConfigError
from skipsearch.search.group import load_sweep
from skipsearch.tuning.schedule_file import load_schedule
from skipsearch.tuning.skip_config import SkipConfig
from skipsearch.tuning.skips import SkipPoint
from tests.conftest import run_cli

FREEU = {"b1", "b2", "s1", "s2"}
ARGS = ["search.steps=[2]", "search.n_trials=3", "search.n_startup_trials=1",
        "search.confirm_top_k=1", "search.confirm_blocks=3", "search.limit_steps=[]"]


def sweep_of(out, name: str):
    return load_sweep(name=name, storage=f"sqlite:///{out / 'studies.db'}")


def test_freeu_alone_searches_its_four_factors_and_its_export_reproduces(tiny_overrides,
                                                                          tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", *tiny_overrides, *ARGS, "method=freeu")
    assert result.returncode == 0, result.stderr
    sweep = sweep_of(out, "digits-heun-freeu")  # the default name says what is tuned
    for trial in sweep.trials:
        assert set(trial.params) == FREEU
        assert trial.user_attrs["coefficients"] == [1.0] * 6  # no skip is scaled
    baseline = next(t for t in sweep.trials if t.user_attrs.get("baseline"))
    assert all(v == 1.0 for v in baseline.params.values())  # FreeU off: the plain sampler
    path = out / "exports" / "digits-heun-freeu" / "nfe003.yaml"
    exported = load_schedule(path)
    if exported.study["trial"] != baseline.number:
        assert exported.schedule.uses_freeu
        assert set(yaml.safe_load(path.read_text())["schedule"]["freeu"]) == FREEU
    drawn = run_cli("sample", *tiny_overrides, f"schedule={path}")
    assert drawn.returncode == 0, drawn.stderr
    score, again = map(float, re.search(r"FID ([\d.e+-]+) \(exported: ([\d.e+-]+)\)",
                                        drawn.stdout).groups())
    assert score == pytest.approx(exported.value, rel=1e-6) and again == pytest.approx(score)


def test_both_together_search_rho_and_freeu_and_compare_pairs_the_methods(tiny_overrides,
                                                                            tmp_path):
    out = tmp_path / "out"
    for method in ("skip_tuning", "skip_tuning+freeu"):
        result = run_cli("sweep", *tiny_overrides, *ARGS, f"method={method}")
        assert result.returncode == 0, result.stderr
    both = sweep_of(out, "digits-heun-linear+freeu")
    assert all(set(t.params) == FREEU | {"rho_top", "rho_bottom"} for t in both.trials)
    shown = run_cli("compare", "digits-heun-linear", "digits-heun-linear+freeu",
                    *tiny_overrides)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.strip("│ ").startswith("3 "))
    # B - A comes with its paired interval: both confirmed on the same seed blocks
    assert re.search(r"[-+][\d.e+-]+ \[[-+][\d.e+-]+, [-+][\d.e+-]+\]", row.split("│")[4]), row
    report = run_cli("report", *tiny_overrides, "search.study_name=digits-heun-linear",
                     "report.grid=0", "report.compare=[digits-heun-linear+freeu]")
    assert report.returncode == 0, report.stderr
    page = (out / "reports" / "digits-heun-linear" / "index.html").read_text()
    beside = page[page.index('id="side-by-side"'):]
    assert "B = digits-heun-linear+freeu" in beside
    assert re.search(r"<td>[-+][\d.e+-]+ \[[-+][\d.e+-]+, [-+][\d.e+-]+\]( n\.s\.)?</td>",
                     beside)
    missing = run_cli("report", *tiny_overrides, "search.study_name=digits-heun-linear",
                      "report.grid=0", "report.compare=[digits-heun-nothing]")
    assert missing.returncode == 2 and "report.compare" in missing.stderr


def test_compare_pairs_by_the_recorded_blocks_as_the_confirmation_does():
    from scipy.stats import t

    from skipsearch.search.side_by_side import Pair, difference_text, paired
    from skipsearch.search.summary import SummaryRow

    def row(best, leave_out):
        return SummaryRow(3, 2, 10.0, best, best, True, True, 0, {}, [], leave_out=leave_out)

    a, b = row(5.0, (5.1, 4.8, 5.2)), row(4.0, (4.1, 3.8, 4.15))
    delta = paired(a, b)
    k, diffs = 3, [x - y for x, y in zip(b.leave_out, a.leave_out, strict=True)]
    mean = sum(diffs) / k  # the delete-a-group jackknife, written out
    se = ((k - 1) / k * sum((d - mean) ** 2 for d in diffs)) ** 0.5
    assert delta.delta == -1.0
    assert delta.high - delta.delta == pytest.approx(t.ppf(0.975, k - 1) * se)
    assert difference_text(Pair(3, a, b, None, delta)).startswith("-1 [")
    worse = paired(b, a)  # the same pair the other way round: B worse, and sure of it
    assert worse.worse and "n.s." not in difference_text(Pair(3, b, a, None, worse))
    assert paired(a, row(4.0, None)) is None  # no blocks kept: no interval
    assert difference_text(Pair(3, a, row(4.0, None), None, None)) == "-1"


@pytest.mark.parametrize(("override", "key"), [
    ("method=freeu_v2", "method"),
    ("freeu.space.s1.low=-0.5", "freeu.space.s1.low"),
    ("freeu.space.b1={low: 1.5, high: 1.0}", "freeu.space.b1"),
    ("~freeu.space.b2", "freeu.space.b2"),
])
def test_a_bad_method_or_freeu_range_is_one_line(override, key, tiny_overrides, tmp_path):
    result = run_cli("sweep", *tiny_overrides, "method=freeu", override)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"skipsearch: error: {key}")
    assert not (tmp_path / "out" / "studies.db").exists()


def test_freeu_is_refused_up_front_where_it_cannot_act():
    config = SkipConfig("linear", method="freeu")
    tokens = [SkipPoint(i, 0, 0, 8, 16, f"out_blocks.{i}.skip_linear", -1) for i in range(2)]
    with pytest.raises(ConfigError, match="token features"):
        check_method(config, SimpleNamespace(name="uvit", denoiser=SimpleNamespace(
            skips=tokens)))
    one_level = [SkipPoint(i, 0, 16, 8, 16, f"up.{i}") for i in range(2)]
    with pytest.raises(ConfigError, match="one decoder stage"):
        check_method(config, SimpleNamespace(name="flat", denoiser=SimpleNamespace(
            skips=one_level)))
    check_method(SkipConfig("linear"), None)  # Skip-Tuning alone asks nothing of the model


def test_inspect_shows_freeu_per_skip_and_windows_refuses_it(tiny_overrides):
    factors = "freeu.factors={b1: 1.3, b2: 1.4, s1: 0.9, s2: 0.2}"
    shown = run_cli("inspect", *tiny_overrides, factors)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if "net.dec." in line]
    stages = [line.split("│")[-2].strip() for line in rows]
    assert stages[:2] == ["1.3000, 0.9000"] * 2 and stages[2:4] == ["1.4000, 0.2000"] * 2
    assert stages[4:] == ["-"] * (len(rows) - 4)  # the highest resolution: untouched
    refused = run_cli("windows", *tiny_overrides, factors)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("skipsearch: error: freeu.factors=")
    assert "acts at every noise level" in refused.stderr


def test_bad_fixed_freeu_factors_are_one_line_in_a_sweep_too(tiny_overrides, tmp_path):
    result = run_cli("sweep", *tiny_overrides, "freeu.factors={b1: 1, b2: 1, s1: 1, s2: x}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("skipsearch: error: freeu.factors")
    assert not (tmp_path / "out" / "studies.db").exists()
