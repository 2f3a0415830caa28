"""Where the package finds its config tree, sweeps and bundled assets."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"
REPO_DIR = PACKAGE_DIR.parent
CONF_DIR = REPO_DIR / "conf"
SWEEPS_DIR = REPO_DIR / "sweeps"
