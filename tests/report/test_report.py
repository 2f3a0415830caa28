"""`skipsearch report`: one self-contained HTML page with PNG figures, tables and sample grids."""

from __future__ import annotations

import base64
from dataclasses import replace
from html.parser import HTMLParser
from io import BytesIO

import pytest
import yaml
from PIL import Image

from skipsearch.cli import main
from skipsearch.cli.tables import summary_cells
from skipsearch.report import figures
from skipsearch.report.data import trial_rows
from skipsearch.report.figures import contour_points
from skipsearch.report.page import fmt_score
from skipsearch.search.catalog import final_scores
from skipsearch.search.group import load_sweep
from skipsearch.search.summary import summarize
from tests.cli.test_studies import make_sweep
from tests.conftest import run_cli

SECTIONS = {"score-vs-nfe", "contour", "history", "importance", "samples", "trials"}
FIGURES = ("score-vs-nfe.png", "contour.png", "history.png", "importance.png")


class Page(HTMLParser):
    """Section ids, image sources, and the cells (by class) of each row of each table."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.rows: dict[str, list[tuple[dict, dict[str, str]]]] = {}
        self.table = self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "table":
            self.table = attrs["id"]
            self.rows[self.table] = []
        elif tag == "tr" and self.table and any(k.startswith("data-") for k in attrs):
            self.rows[self.table].append((attrs, {}))
        elif tag == "td":
            self.cell = attrs.get("class") or ""
            self.rows[self.table][-1][1][self.cell] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.rows[self.table][-1][1][self.cell] += data


def test_report_of_a_confirmed_sweep(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    sweep = run_cli("sweep", *tiny_overrides, "search.steps=[2,3]", "search.n_startup_trials=1",
                    "search.n_trials=6", "search.confirm_top_k=1")
    assert sweep.returncode == 0, sweep.stderr
    result = run_cli("report", *tiny_overrides, "report.grid=16")
    assert result.returncode == 0, result.stderr
    folder = out / "reports" / "digits-heun-linear"
    index = folder / "index.html"
    assert result.stdout.strip().splitlines()[-1] == str(index)
    text = index.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    assert set(page.sections) == SECTIONS and len(page.sections) == len(SECTIONS)
    assert "script" not in page.tags and "http://" not in text and "https://" not in text

    # one row per trial, in order, with its state
    study = load_sweep(name="digits-heun-linear",
                       storage=f"sqlite:///{out}/studies.db")
    rows = page.rows["trials-table"]
    assert [int(attrs["data-trial"]) for attrs, _ in rows] == [t.number for t in study.trials]
    for (_, cells), trial in zip(rows, study.trials, strict=True):
        assert cells["state"] == trial.state.name.lower()
        assert cells["score"] == fmt_score(trial.value)

    # every PNG is a valid file next to the page and embedded as a data URI
    nfes = sorted({t.user_attrs["nfe"] for t in study.trials})
    grids = sorted(folder.glob("samples-nfe*-*.png"))
    assert {f"samples-nfe{n:03d}-baseline.png" for n in nfes} <= {p.name for p in grids}
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in page.images}
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    for path in [*(folder / name for name in FIGURES), *grids]:
        data = path.read_bytes()
        with Image.open(BytesIO(data)) as image:
            assert image.format == "PNG"
            image.verify()
        assert data in embedded and path.name in page.links
    assert len(page.images) == len(FIGURES) + len(grids)
    with Image.open(grids[0]) as image:  # 16 images of 16x16 in 4 x 4, 1 px apart, scale 4
        assert image.size == ((4 * 17 + 1) * 4,) * 2

    # the score-vs-NFE table shows the exported (confirmed) best and baseline scores, and
    # the change on the confirm metric (digits_fid's default: digits_fd_ae) of a tuned best
    summary = {int(attrs["data-nfe"]): cells for attrs, cells in page.rows["summary-table"]}
    assert sorted(summary) == nfes
    assert "<th>digits FID change [95% CI]</th><th>digits FD-AE change [95% CI]</th>" in text
    tuned = 0
    for nfe in nfes:
        record = yaml.safe_load((out / "exports" / "digits-heun-linear" /
                                 f"nfe{nfe:03d}.yaml").read_text())
        score = record["score"]
        assert score["metric"] == "digits_fid"
        assert score["confirmed"] and summary[nfe]["confirmed"] == "yes"
        assert summary[nfe]["best"] == fmt_score(score["value"])
        assert summary[nfe]["baseline"] == fmt_score(score["baseline"])
        study_record = record["study"]  # the export names the trial as the report does
        assert summary[nfe]["trial"] == \
            f"{study_record['cell'].rsplit('/', 1)[1]}#{study_record['cell_trial']}"
        other = score.get("metrics", {}).get("digits_fd_ae")
        if other is None or "delta" not in other:  # the baseline is the best: no change
            continue
        tuned += 1
        cell = summary[nfe]["confirm-digits_fd_ae"]
        assert cell.startswith(f"{other['delta']:+.4g} [{other['delta_ci95'][0]:+.4g}, ")
        assert cell.endswith(" worse") == other["worse"]
        flagged = "digits FD-AE" if score["reversed"] else "-"
        assert summary[nfe]["reversed"] == flagged
    assert tuned, "no NFE's best was a tuned, confirmed trial"

    # a study that does not exist: exit code 2 and one line naming the key
    for args, key in ((["search.study_name=no-such-study"], "search.study_name"),
                      ([f"out_dir={tmp_path / 'empty'}"], "storage.url")):
        missing = run_cli("report", *tiny_overrides, *args)
        assert missing.returncode == 2, missing.stderr
        lines = missing.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0], missing.stderr
    assert not (tmp_path / "empty" / "reports").exists()


def report_page(store: dict, capsys, name: str) -> tuple[Page, str]:
    """``report --study NAME report.grid=0`` of a hand-made sweep: the parsed page and text."""
    code = main(["report", "--study", name, "report.grid=0", *store["over"]])
    out = capsys.readouterr()
    assert code == 0, out.err
    index = store["tmp"] / "out" / "reports" / name / "index.html"
    assert out.out.strip().splitlines()[-1] == str(index)
    text = index.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    assert set(page.sections) == SECTIONS
    return page, text


def test_report_shows_a_confirm_metric_and_its_reversal(reversal, capsys):
    """The sweep's metric by its label, the second metric's change and the reversal flag."""
    page, text = report_page(reversal, capsys, "gamma")
    summary = {int(a["data-nfe"]): cells for a, cells in page.rows["summary-table"]}
    assert summary[3]["delta"] == "-5 [-6, -4]"
    assert summary[3]["confirm-digits_fd_ae"] == "+0.7 [+0.2, +1.2] worse"
    assert summary[3]["reversed"] == "digits FD-AE"
    assert summary[5]["confirm-digits_fd_ae"] == "-0.5 [-0.9, -0.1]"
    assert summary[5]["reversed"] == "-"
    assert "<th>baseline digits FID</th><th>best digits FID</th>" in text
    assert "<th>digits FID change [95% CI]</th><th>digits FD-AE change [95% CI]</th>" in text
    assert '<p class="note">reversed on digits FD-AE: the best schedule at NFE 3 (trial ' \
           "heun-steps2#1) gains on digits FID" in text
    assert text.count('<p class="note">reversed on') == 1
    assert "<dt>confirm metrics</dt><dd>digits FD-AE (digits_fd_ae)</dd>" in text
    assert "<h2>digits FID per NFE: baseline and tuned</h2>" in text
    assert "FID over" not in text.replace("digits FID over", "")


def test_report_of_older_records_still_renders(store, capsys):
    """A sweep from before the metric registry: fid keys and stage_fids, no other metric."""
    page, text = report_page(store, capsys, "alpha")
    summary = {int(a["data-nfe"]): cells for a, cells in page.rows["summary-table"]}
    assert (summary[3]["baseline"], summary[3]["best"], summary[3]["delta"]) == (
        "31", "26", "-5 [-6, -4]")
    assert summary[3]["confirmed"] == "yes" and summary[5]["confirmed"] == "no"
    assert not any(k.startswith("confirm-") or k == "reversed" for k in summary[3])
    trials = {int(a["data-trial"]): cells for a, cells in page.rows["trials-table"]}
    assert trials[1]["score"] == "25" and trials[1]["final-score"] == "26"
    assert trials[2]["final-score"] == "-"
    assert "<dt>metric</dt><dd>FID (fid, lower is better)</dd>" in text
    assert "reversed on" not in text and "confirm metrics" not in text


def test_figures_name_the_metric_and_follow_its_direction(store):
    """A maximised metric: best so far rises, the star is the highest, titles name it."""
    make_sweep(store["url"], "clip", "digits", {2: [(30.0, 1.0, 1.0), (25.0, 0.9, 0.8),
                                                    (34.0, 0.8, 0.7), (31.0, 0.7, 0.6)]},
               metric="clip_score", direction="maximize")
    sweep = load_sweep(store["url"], "clip")
    rows = trial_rows(sweep)
    points = contour_points(rows, higher_is_better=True)[3]
    assert points[:, 2].tolist() == [31.0, 34.0, 25.0, 30.0]  # sorted by (bottom, top)
    history = figures.history_figure(rows, "CLIP score", higher_is_better=True)
    ax = history.axes[0]
    assert ax.get_ylabel() == "search CLIP score"
    assert ax.get_title().startswith("search CLIP score per trial")
    assert "higher is better" in ax.get_title()
    best_so_far = next(line for line in ax.get_lines()
                       if line.get_drawstyle() == "steps-post").get_ydata().tolist()
    assert best_so_far == [30.0, 30.0, 34.0, 34.0]
    contour = figures.contour_figure(rows, None, "CLIP score", higher_is_better=True)
    assert contour.axes[0].get_title() == "NFE 3: best 34 (4 trials)"
    assert "search CLIP score" in contour.get_suptitle()
    summary = summarize(sweep)
    assert summary[0].best_score == 34.0
    fig = figures.score_vs_nfe_figure(summary, None, "CLIP score")
    assert fig.axes[0].get_title() == (
        "CLIP score per NFE: baseline and best (search scores, not confirmed)")
    assert fig.axes[0].get_ylabel() == "CLIP score (higher is better)"


def test_the_score_figure_draws_the_confirmed_interval(reversal):
    sweep = load_sweep(reversal["url"], "gamma")
    _, scores = final_scores(sweep)
    summary = summarize(sweep, scores)
    fig = figures.score_vs_nfe_figure(summary, None, "digits FID")
    ax = fig.axes[0]
    assert ax.get_title() == "digits FID per NFE: baseline and best (confirmed, 95% CI)"
    bars = next(c for c in ax.containers if c.get_label().startswith("95% CI"))
    segments = bars.lines[2][0].get_segments()
    # best 26 at NFE 3 with the change -5 [-6, -4]: from 25 to 27; NFE 5: 19, -2 [-3, -1]
    assert [(s[0][0], s[0][1], s[1][1]) for s in segments] == [(3, 25.0, 27.0),
                                                               (5, 18.0, 20.0)]


def test_a_baseline_the_race_stopped_is_drawn_hollow_and_its_change_is_paired(reversal):
    sweep = load_sweep(reversal["url"], "gamma")
    _, scores = final_scores(sweep)
    rows = summarize(sweep, scores)
    stopped = replace(rows[0], baseline_images=600)
    assert stopped.change == pytest.approx(stopped.delta / stopped.baseline_score)
    fig = figures.score_vs_nfe_figure([stopped, *rows[1:]], None, "digits FID")
    hollow = [line for line in fig.axes[0].get_lines()
              if line.get_label().startswith("baseline stopped")]
    assert len(hollow) == 1 and hollow[0].get_xdata().tolist() == [rows[0].nfe]
    assert hollow[0].get_markerfacecolor() == "white"
    assert "600 img" in summary_cells([stopped])[1][0][2]
