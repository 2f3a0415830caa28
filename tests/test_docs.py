"""The documentation site builds with ``mkdocs build --strict`` and holds its generated pages.

The build runs in a subprocess into a temporary folder; the checkout's ``git status`` is the
same before and after it (git is asked without taking its optional index lock).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOWTOS = ("edm", "edm2", "guided", "uvit", "diffusers")


def git_status() -> str | None:
    """``git status --porcelain`` of the checkout, or None where git or the repository is not."""
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        return None
    result = subprocess.run([git, "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    return result.stdout if result.returncode == 0 else None


def page_text(path: Path) -> str:
    """A built page's text: tags dropped, entities decoded, white space collapsed."""
    text = re.sub(r"<[^>]+>", " ", path.read_text())
    return " ".join(html.unescape(text).split())


def yaml_line(path: Path, key: str) -> tuple[str, str]:
    """The default and the trailing comment of a top-level ``key`` of a YAML file."""
    match = re.search(rf"^{key}:\s*(.*?)\s+#\s*(.*)$", path.read_text(), re.MULTILINE)
    assert match, f"{path} has no line '{key}: VALUE  # COMMENT'"
    return match[1], match[2].strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from the checkout's mkdocs.yml into a temporary folder."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("docs") / "site"
    before = git_status()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(out), "-f", str(REPO / "mkdocs.yml")], cwd=out.parent,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    assert git_status() == before, "the build changed files in the checkout"
    return out


def test_the_config_reference_lists_each_key_with_its_default_and_comment(site):
    default, comment = yaml_line(REPO / "conf" / "search" / "tpe.yaml", "n_trials")
    assert default == "30"
    text = page_text(site / "reference" / "config" / "index.html")
    assert f"search.n_trials {default} {comment}" in text
    default, comment = yaml_line(REPO / "conf" / "config.yaml", "batch_size")
    assert f"batch_size {default} {comment}" in text
    for sweep in sorted((REPO / "sweeps").glob("*.yaml")):
        assert f"sweeps/{sweep.name}" in text


def test_the_cli_reference_is_the_usage_text(site):
    text = page_text(site / "reference" / "cli" / "index.html")
    assert "compare A B" in text and "skipsearch studies delete S" in text
    for command in ("sweep", "export", "sample", "show", "compare", "train-toy"):
        assert f"skipsearch {command}" in text


def test_every_page_is_built(site):
    howtos = {p.stem for p in (REPO / "docs" / "site" / "howto").glob("*.md")}
    assert set(HOWTOS) <= howtos
    for name in howtos:
        assert (site / "howto" / name / "index.html").is_file(), name
    for page in ("quickstart", "concepts", "architecture", "reference/api"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "skipsearch.tuning.pipelines.apply" in api
    assert "One command, then one trial" in page_text(site / "architecture" / "index.html")
    assert (site / "images" / "score_vs_nfe.png").is_file()
