"""`skipsearch report`: one self-contained HTML page with PNG figures, tables and sample grids."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from io import BytesIO

import yaml
from PIL import Image

from skipsearch.report.page import fmt_fid
from skipsearch.search.group import load_sweep
from tests.conftest import run_cli

SECTIONS = {"fid-vs-nfe", "contour", "history", "importance", "samples", "trials"}
FIGURES = ("fid-vs-nfe.png", "contour.png", "history.png", "importance.png")


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
        assert cells["fid"] == fmt_fid(trial.value)

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

    # the FID-vs-NFE table shows the exported (confirmed) best and baseline FIDs
    summary = {int(attrs["data-nfe"]): cells for attrs, cells in page.rows["summary-table"]}
    assert sorted(summary) == nfes
    for nfe in nfes:
        record = yaml.safe_load((out / "exports" / "digits-heun-linear" /
                                 f"nfe{nfe:03d}.yaml").read_text())
        score = record["score"]
        assert score["confirmed"] and summary[nfe]["confirmed"] == "yes"
        assert summary[nfe]["best-fid"] == fmt_fid(score["fid"])
        assert summary[nfe]["baseline-fid"] == fmt_fid(score["baseline_fid"])
        assert summary[nfe]["trial"] == str(record["study"]["trial"])

    # a study that does not exist: exit code 2 and one line naming the key
    for args, key in ((["search.study_name=no-such-study"], "search.study_name"),
                      ([f"out_dir={tmp_path / 'empty'}"], "storage.url")):
        missing = run_cli("report", *tiny_overrides, *args)
        assert missing.returncode == 2, missing.stderr
        lines = missing.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0], missing.stderr
    assert not (tmp_path / "empty" / "reports").exists()
