"""The command declarations: each runner and config exists, and one place declares them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skipsearch.cli import USAGE, compose_config
from skipsearch.configuration.commands import COMMANDS
from skipsearch.configuration.paths import CONF_DIR

PACKAGE = Path(__file__).resolve().parents[2] / "skipsearch"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_names_a_runner_a_config_and_keys_that_exist(name):
    command = COMMANDS[name]
    module, func = command.runner.split(":")
    assert callable(getattr(importlib.import_module(module), func))
    assert (CONF_DIR / f"{command.config}.yaml").is_file()
    cfg = compose_config([], command.config)
    for key in command.writes:
        assert OmegaConf.select(cfg, key) is not None, key
    assert f"  {name:<10} {command.about}" in USAGE
    assert set(command.schedule_sections) <= {"model", "sampler", "score"}


def test_the_checks_do_not_reach_into_the_command_line():
    """configuration/ builds settings for both doors, so it imports nothing from cli/."""
    files = sorted((PACKAGE / "configuration").glob("*.py"))
    assert len(files) > 5
    for path in files:
        tree = ast.parse(path.read_text())
        imported = [node.module or "" for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m.startswith("cli") or ".cli" in m], (path, imported)
