"""Where the package finds its config tree, sweeps and bundled assets.

In a checkout (or an editable install) ``conf/`` and ``sweeps/`` sit at the repository's top;
a wheel carries them inside the package (``skipsearch/conf``, ``skipsearch/sweeps``).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # skipsearch/, this file in configuration/
ASSETS_DIR = PACKAGE_DIR / "assets"
REPO_DIR = PACKAGE_DIR.parent


def config_root() -> Path:
    """The folder holding ``conf/`` and ``sweeps/``: the checkout's top, else the package."""
    return REPO_DIR if (REPO_DIR / "conf" / "config.yaml").is_file() else PACKAGE_DIR


CONFIG_ROOT = config_root()
CONF_DIR = CONFIG_ROOT / "conf"
SWEEPS_DIR = CONFIG_ROOT / "sweeps"
