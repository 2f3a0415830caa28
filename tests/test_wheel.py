"""The wheel: built from the checkout, installed outside it, it runs a sweep, export and sample."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import yaml

from tests.conftest import cli_env

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("skipsearch", "conf", "sweeps", "pyproject.toml", "setup.py", "MANIFEST.in",
           "README.md")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """A command's output; a failure shows its stderr."""
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            env=cli_env(), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the checkout (a build writes build/ beside its sources)."""
    source = tmp_path / "source"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
        "-w", tmp_path / "dist", source, cwd=tmp_path)
    return next((tmp_path / "dist").glob("skipsearch-*.whl"))


def test_the_installed_wheel_runs_a_sweep_export_and_sample_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "skipsearch/conf/config.yaml" in names and "skipsearch/sweeps/digits.yaml" in names
    assert "skipsearch/conf/metric/_files.yaml" in names
    assert "skipsearch/assets/digits_autoencoder.safetensors" in names
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    purelib = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print("
                              "sysconfig.get_paths()['purelib'])"], capture_output=True,
                             text=True, check=True).stdout.strip()
    # the dependencies of this interpreter, without its (editable) skipsearch: a .pth line
    # adds a folder to the path, and .pth files inside that folder are not read
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
        wheel, cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run(venv / "bin" / "python", "-c",
                "import skipsearch.configuration.paths as p; print(p.CONF_DIR)",
                cwd=work).stdout.strip()
    assert Path(where) == Path(purelib) / "skipsearch" / "conf"
    cli = venv / "bin" / "skipsearch"
    tiny = ["logger=none", "search.n_trials=2", "search.steps=[2]", "metric.n_samples=12",
            "metric.final_samples=12", "search.confirm_blocks=2", "batch_size=12",
            "search.limit_steps=[]"]
    run(cli, "sweep", *tiny, cwd=work)
    run(cli, "export", *tiny, cwd=work)  # the sweep's overrides: its confirmation's protocol
    best = work / "outputs" / "exports" / "digits-heun-linear" / "best.yaml"
    record = yaml.safe_load(best.read_text())
    assert record["score"]["metric"] == "digits_fid" and "digits_fd_ae" in record["score"][
        "metrics"]
    sample = run(cli, "sample", f"schedule={best}", cwd=work)
    assert "(exported:" in sample.stdout
