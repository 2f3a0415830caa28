"""What the command line imports before it answers: no torch for help and version."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import cli_env

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


def test_public_names_import_lazily():
    import skipsearch

    assert callable(skipsearch.load_schedule) and callable(skipsearch.apply)
    assert "skip_tuning" in dir(skipsearch)
    with pytest.raises(AttributeError, match="no_such_name"):
        skipsearch.no_such_name  # noqa: B018
