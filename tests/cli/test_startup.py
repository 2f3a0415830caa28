"""What the command line imports before it answers: no torch for help, version, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import cli_env

PROBE = """
import sys
from skipsearch.cli import main
code = main({argv!r})
heavy = sorted(m for m in ("torch", "torchvision", "torchmetrics", "optuna", "wandb")
               if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "CODE=" + str(code))
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["no-such-command"]])
def test_answers_without_heavy_imports(argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True,
                         text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY= "), last


TORCH_FAMILY = ("torch", "torchvision", "torchmetrics")
ERROR_PROBE = """
import sys
from skipsearch.cli import main
code = main({argv!r})
heavy = sorted(m for m in {family!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "CODE=" + str(code))
"""


@pytest.mark.parametrize("argv, key", [
    (["sweep", "sampler.steps=0"], "sampler.steps=0"),
    (["sweep", "model.kind=no_such_kind"], "model.kind="),
    (["sample", "model.weights=no/such/weights.safetensors"], "model.weights="),
    (["sweep", "precision.network=fp8"], "precision.network="),
    (["sweep", "compile=fastest"], "compile="),
    (["sweep", "search=tpe", "search.sampler=annealing"], "search.sampler="),
    (["sweep", "pruner=median", "pruner.stages=[2]"], "pruner.stages="),
    (["sweep", "logger.kind=tensorboard"], "logger.kind="),
    (["windows", "sampler=unipc"], "sampler.name="),
    (["sample", "sampler.discretization=list", "sampler.sigmas=[1,2]"], "sampler.sigmas="),
    (["windows", "windows.count=99"], "windows.count="),
    (["sweep", "search.n_trails=3"], "did you mean search.n_trials?"),
])
def test_config_errors_without_torch(argv, key, tmp_path):
    """A configuration error answers in one line, exit 2, and torch was never imported."""
    argv = [*argv, f"out_dir={tmp_path}/out", f"storage.url=sqlite:///{tmp_path}/s.db"]
    out = subprocess.run([sys.executable, "-c", ERROR_PROBE.format(argv=argv,
                                                                   family=TORCH_FAMILY)],
                         capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("skipsearch: error: "), out.stderr
    assert key in errors[0], errors[0]
    last = out.stdout.strip().splitlines()[-1]
    assert last == "HEAVY= CODE=2", last


@pytest.mark.parametrize("text, why", [("format: 1\n", "format is 1"),
                                       ("format: skipsearch-schedule/1\nschedule: {}\n",
                                        "schedule.coefficients is missing")])
def test_a_bad_schedule_file_answers_without_torch_or_optuna(text, why, tmp_path):
    """Reading a schedule file needs YAML alone: a bad one is one line before torch or Optuna."""
    path = tmp_path / "schedule.yaml"
    path.write_text(text)
    argv = ["sample", f"schedule={path}", f"out_dir={tmp_path}/out"]
    probe = ERROR_PROBE.format(argv=argv, family=(*TORCH_FAMILY, "optuna"))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=cli_env(), timeout=120)
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 1 and "schedule=" in errors[0] and why in errors[0], out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY= CODE=2", out.stdout


def test_dashboard_imports_no_torch():
    """The dashboard serves a study storage: its runner needs Optuna, not torch."""
    probe = ("import sys, skipsearch.cli.dashboard; "
             f"print(sorted(m for m in {TORCH_FAMILY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_component_names_match_their_components():
    """The torch-free lists the config check reads name exactly what the components run."""
    from skipsearch.models.kinds import MODEL_KINDS
    from skipsearch.models.loading import LOADERS
    from skipsearch.samplers.names import SAMPLER_OPTIONS
    from skipsearch.samplers.registry import SAMPLERS

    assert tuple(LOADERS) == MODEL_KINDS
    assert {name: d.options for name, d in SAMPLERS.items()} == SAMPLER_OPTIONS


def test_public_names_import_lazily():
    import skipsearch

    assert callable(skipsearch.load_schedule) and callable(skipsearch.apply)
    assert "skip_tuning" in dir(skipsearch)
    with pytest.raises(AttributeError, match="no_such_name"):
        skipsearch.no_such_name  # noqa: B018


def test_export_of_a_finished_sweep_imports_no_torch(tiny_overrides, tmp_path):
    """``skipsearch export`` reads the study and writes YAML: no torch, and the sweep's files."""
    from skipsearch.cli import compose_config
    from skipsearch.cli.sweep import run_sweep

    args = [*tiny_overrides, "search.steps=[2]", "search.n_trials=2", "search.confirm_top_k=1"]
    run_sweep(compose_config(args))  # in this process: torch is loaded here already
    folder = tmp_path / "out" / "exports" / "digits-heun-linear"
    written = {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))}
    assert "best.yaml" in written and "confirmed: true" in written["best.yaml"]
    out = subprocess.run([sys.executable, "-c", ERROR_PROBE.format(argv=["export", *args],
                                                                   family=TORCH_FAMILY)],
                         capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY= CODE=0", out.stdout + out.stderr
    again = {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))}
    assert again.keys() == written.keys()
    for name, text in written.items():  # the same files, but for when they were made
        assert drop_created(again[name]) == drop_created(text), name


def drop_created(text: str) -> str:
    """An exported file without its ``created:`` time."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("created: "))


@pytest.mark.parametrize("argv", [["studies"], ["show", "alpha"], ["compare", "alpha", "beta"],
                                  ["export", "--study", "alpha"], ["show", "nope"],
                                  ["studies", "delete", "beta", "--yes"]])
def test_study_commands_run_without_torch(argv, tmp_path):
    """Listing, showing, comparing, deleting and exporting sweeps read the storage only."""
    from tests.cli.test_studies import make_sweep

    url = f"sqlite:///{tmp_path}/studies.db"
    make_sweep(url, "alpha", "digits", {2: [(30.0, 1.0, 1.0), (25.0, 0.9, 0.8)]})
    make_sweep(url, "beta", "digits", {2: [(29.0, 1.0, 1.0)]})
    argv = [*argv, f"storage.url={url}", f"out_dir={tmp_path}/out"]
    out = subprocess.run([sys.executable, "-c", ERROR_PROBE.format(argv=argv,
                                                                   family=TORCH_FAMILY)],
                         capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    code = 2 if "nope" in argv else 0
    assert out.stdout.strip().splitlines()[-1] == f"HEAVY= CODE={code}", out.stdout + out.stderr
