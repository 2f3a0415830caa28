"""Build hook: the wheel carries conf/ and sweeps/ inside the package (the rest: pyproject.toml).

A checkout keeps the config tree and the ready sweeps at the repository's top, where users read
and edit them; ``skipsearch/configuration/paths.py`` finds them there or, installed from a
wheel, inside the package as ``skipsearch/conf`` and ``skipsearch/sweeps``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIG_TREES = ("conf", "sweeps")


class BuildWithConfig(build_py):
    """``build_py`` that also copies the YAML trees into the built package."""

    def run(self) -> None:
        super().run()
        for name in CONFIG_TREES:
            target = Path(self.build_lib) / "skipsearch" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(Path(__file__).parent / name, target,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithConfig})
