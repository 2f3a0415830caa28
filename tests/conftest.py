"""Shared fixtures: tiny random-initialised networks of the real architectures, CLI runner."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skipsearch.configuration.weights import save_weights
from skipsearch.metrics.features import DigitsClassifier, DigitsClassifierConfig, config_dict
from skipsearch.models.digits import build_digits_denoiser
from skipsearch.models.digits_unet import DigitsUNetConfig

# One torch thread for the whole run, pinned here once: the networks are tiny, the machine has
# few cores, and a test that changed the count would change it for every test after it.
torch.set_num_threads(1)

TINY_UNET = DigitsUNetConfig(model_channels=8, channel_mult=(1, 2, 2), emb_dim=32)
TINY_CLASSIFIER = DigitsClassifierConfig(width=8, feature_dim=16)


def scaled_up(classifier: DigitsClassifier, factor: float = 3.0) -> DigitsClassifier:
    """Multiply every weight so a random classifier's features spread over O(1)."""
    with torch.no_grad():
        for m in classifier.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(factor)
    return classifier


@pytest.fixture
def tiny_denoiser():
    """A random-initialised digits denoiser at reduced width, in eval mode."""
    torch.manual_seed(0)
    return build_digits_denoiser(TINY_UNET).eval().requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> dict[str, Path]:
    """Safetensors files of a tiny random denoiser and a tiny random feature classifier."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    denoiser = build_digits_denoiser(TINY_UNET)
    save_weights(denoiser.net, folder / "model.safetensors", TINY_UNET.to_dict(),
                 sigma_data="0.5")
    classifier = scaled_up(DigitsClassifier(TINY_CLASSIFIER))
    save_weights(classifier, folder / "classifier.safetensors", config_dict(TINY_CLASSIFIER))
    return {"model": folder / "model.safetensors", "classifier": folder / "classifier.safetensors"}


@pytest.fixture
def tiny_overrides(tiny_weights, tmp_path) -> list[str]:
    """Overrides for a fast CLI run on the tiny networks, writing under tmp_path."""
    return [f"model.weights={tiny_weights['model']}",
            f"metric.weights={tiny_weights['classifier']}",
            f"out_dir={tmp_path / 'out'}", "metric.n_samples=24", "metric.final_samples=30",
            "batch_size=12",
            "logger=none", "device=cpu"]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: W&B offline and quiet, one OpenMP thread."""
    # One OpenMP thread: tiny networks gain nothing from more, and busy cores make them wait.
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "OMP_NUM_THREADS": "1"}
    env.pop("WANDB_API_KEY", None)
    if extra:
        env.update(extra)
        if "WANDB_API_KEY" in extra:
            env.pop("WANDB_MODE")
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``skipsearch ARGS`` in this interpreter, as the console script would.

    Its output is captured and its exit code returned as a CompletedProcess; the imports are
    shared with the test run, which is what makes it fast. ``run_cli_process`` is for what
    needs an interpreter of its own (exit codes of a real process, imports, environments).
    """
    from skipsearch.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv, environ = sys.argv[:], dict(os.environ)
    os.environ.update(cli_env())
    os.environ.pop("WANDB_API_KEY", None)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # Hydra ends a failed job with sys.exit
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
        quiet_root_logger()
    return subprocess.CompletedProcess(["skipsearch", *args], code, out.getvalue(),
                                       err.getvalue())


def quiet_root_logger() -> None:
    """Drop the handlers a Hydra run left on the root logger (they hold its captured output)."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            handler.close()


def run_cli_process(*args: str, cwd: Path | None = None,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``skipsearch ARGS`` in a fresh interpreter and capture its output."""
    return subprocess.run([sys.executable, "-m", "skipsearch.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=cli_env(env), timeout=600)


def start_cli(*args: str) -> subprocess.Popen:
    """Start ``skipsearch ARGS`` in the background (stderr piped: read it with communicate)."""
    return subprocess.Popen([sys.executable, "-m", "skipsearch.cli", *args], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
