"""The dashboard and the report page in headless Chromium (Debian's; `.ci/run` installs it)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from PIL import Image

from skipsearch.report.page import fmt_score
from skipsearch.search.group import load_sweep
from tests.conftest import free_port, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Debian's chromium is not installed (.ci/run installs it)")
SWEEP = ["search.steps=[2,3]", "search.n_startup_trials=1", "search.n_trials=5",
         "search.confirm_top_k=1"]


def chromium(target: str, profile: Path, *action: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``target`` with ``action`` (--dump-dom or --screenshot=...)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=20000",
             "--window-size=1280,1000"]
    return subprocess.run([CHROMIUM, *flags, *action, target], capture_output=True, text=True,
                          timeout=180)


def visible_text(dom: str) -> str:
    """The text of a DOM dump, without styles, scripts and tags."""
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def wait_for(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    """Poll ``url`` until it answers; fail with the server's output if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the dashboard exited: {server.communicate()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} did not answer in {seconds} s")


def check_png(path: Path) -> None:
    """A real, non-trivial screenshot."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1280, 1000)
        assert len(set(image.convert("L").getdata())) > 10


def test_the_dashboard_shows_the_study_trials(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    sweep = run_cli("sweep", *tiny_overrides, *SWEEP)
    assert sweep.returncode == 0, sweep.stderr
    first = load_sweep(name="digits-heun-linear",
                       storage=f"sqlite:///{out}/studies.db").cells[0]  # study 1: the first cell
    trials = first.trials
    port = free_port()
    env = {**os.environ, "WANDB_MODE": "offline"}
    server = subprocess.Popen([sys.executable, "-m", "skipsearch.cli", "dashboard",
                               *tiny_overrides, f"dashboard.port={port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/api/studies", server)
        page = f"{base}/dashboard/studies/1/trials"
        text = visible_text(chromium(page, tmp_path / "profile", "--dump-dom").stdout)
        assert first.study_name in text and f"{len(trials)} Trials" in text
        for t in trials:
            assert f"Trial {t.number} " in text
        shot = tmp_path / "dashboard.png"
        chromium(f"{base}/dashboard/studies/1", tmp_path / "profile", f"--screenshot={shot}")
        check_png(shot)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/dashboard" in output  # loopback by default


def test_dashboard_study_links_open_each_cell(tiny_overrides, tmp_path):
    """``dashboard --study NAME`` prints a link per cell study; each opens that study."""
    out = tmp_path / "out"
    assert run_cli("sweep", *tiny_overrides, *SWEEP).returncode == 0
    cells = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db").cells
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "skipsearch.cli", "dashboard",
                               "--study", "digits-heun-linear", f"out_dir={out}",
                               f"dashboard.port={port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "WANDB_MODE": "offline"})
    try:
        links = {}
        for line in server.stdout:  # the links come before the server starts
            name, _, link = line.strip().partition(": http")
            if name.startswith("digits-heun-linear/"):
                links[name] = f"http{link}"
            if line.startswith("optuna-dashboard:"):
                break
        assert sorted(links) == sorted(c.study_name for c in cells)
        wait_for(f"http://127.0.0.1:{port}/api/studies", server)
        for name, link in links.items():
            text = visible_text(chromium(link, tmp_path / "profile", "--dump-dom").stdout)
            others = [c.study_name for c in cells if c.study_name != name]
            assert name in text and not any(o in text for o in others), (name, text[:300])
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_the_report_page_shows_the_study_trials(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    sweep = run_cli("sweep", *tiny_overrides, *SWEEP)
    assert sweep.returncode == 0, sweep.stderr
    rho = ["skip.params.rho_top=0.6", "skip.params.rho_bottom=0.8"]
    windows = run_cli("windows", *tiny_overrides, *rho, "sampler.steps=4", "windows.width=2")
    assert windows.returncode == 0, windows.stderr
    analyze = run_cli("analyze", *tiny_overrides, *rho, "analyze.n_images=6",
                      "analyze.n_sigmas=5")
    assert analyze.returncode == 0, analyze.stderr
    report = run_cli("report", *tiny_overrides, "report.grid=16")
    assert report.returncode == 0, report.stderr
    study = load_sweep(name="digits-heun-linear",
                       storage=f"sqlite:///{out}/studies.db")
    page = (out / "reports" / "digits-heun-linear" / "index.html").resolve().as_uri()
    dom = chromium(page, tmp_path / "profile", "--dump-dom").stdout
    rows = re.findall(r'<tr data-trial="(\d+)"', dom)
    assert [int(n) for n in rows] == [t.number for t in study.trials]
    text = visible_text(dom)
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert fmt_score(t.value) in text
    # The instruments' sections: baseline, full range and two windows; five noise levels.
    assert re.findall(r'<tr data-kind="(\w+)"', dom) == ["baseline", "full", "window", "window"]
    assert len(re.findall(r'<tr data-sigma="', dom)) == 5
    assert "Noise windows: where the schedule helps" in text
    assert "Denoising loss: pixel space and feature space" in text
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', dom)
    assert len(images) >= 6  # figures and sample grids load from the page itself
    shot = tmp_path / "report.png"
    chromium(page, tmp_path / "profile", f"--screenshot={shot}")
    check_png(shot)
