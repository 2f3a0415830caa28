"""Re-make the docs' figures and screenshots from a finished default sweep.

    make sweep && python docs/figures.py --out-dir outputs

Writes ``docs/score_vs_nfe.png`` (the report's figure), ``docs/report.png`` (the report page)
and ``docs/dashboard.png`` (optuna-dashboard on the sweep's 11-NFE cell), the two screenshots
taken with headless Chromium (Debian's ``chromium``) at 1280 x 1000.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
STUDY = "digits-heun-linear"  # the default sweep's name


def chromium(target: str, profile: Path, shot: Path) -> None:
    """A screenshot of ``target`` at 1280 x 1000 by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("figures: needs Chromium (apt install chromium)")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                    "--window-size=1280,1000", f"--screenshot={shot}", target],
                   check=True, capture_output=True, timeout=180)


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_shot(out_dir: Path, profile: Path) -> None:
    """Serve the sweep's storage with optuna-dashboard and shoot its 11-NFE cell."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "skipsearch.cli", "dashboard",
                               f"out_dir={out_dir}", f"dashboard.port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=5):
                    break
            except OSError:
                time.sleep(1)
        cells = sorted(["heun-steps3", "heun-steps4", "heun-steps6"])  # study ids 1, 2, 3
        chromium(f"{base}/dashboard/studies/{cells.index('heun-steps6') + 1}", profile,
                 DOCS / "dashboard.png")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("outputs"),
                        help="the out_dir of a finished `make sweep`")
    args = parser.parse_args()
    out_dir = args.out_dir  # as given: the page shows the storage URL made from it
    subprocess.run([sys.executable, "-m", "skipsearch.cli", "report", f"out_dir={out_dir}",
                    "logger=none"], check=True)
    report = (out_dir / "reports" / STUDY).resolve()
    shutil.copy(report / "score-vs-nfe.png", DOCS / "score_vs_nfe.png")
    profile = (out_dir / "cache" / "chromium-profile").resolve()
    chromium((report / "index.html").as_uri(), profile, DOCS / "report.png")
    dashboard_shot(out_dir, profile)
    for name in ("score_vs_nfe.png", "report.png", "dashboard.png"):
        print(DOCS / name)


if __name__ == "__main__":
    main()
