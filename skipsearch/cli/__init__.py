"""The ``skipsearch`` command: one Hydra app per subcommand, sharing the conf/ tree.

    skipsearch sweep search.n_trials=30
    skipsearch export
    skipsearch sample schedule=outputs/exports/digits-heun-linear/best.yaml
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError
from ..paths import CONF_DIR, REPO_DIR

# command -> (primary config, runner "module:function")
COMMANDS: dict[str, tuple[str, str]] = {
    "sweep": ("config", "skipsearch.cli.sweep:run_sweep"),
    "export": ("config", "skipsearch.cli.export:run_export"),
    "report": ("config", "skipsearch.cli.report:run_report"),
    "dashboard": ("config", "skipsearch.cli.dashboard:run_dashboard"),
    "sample": ("config", "skipsearch.cli.sample:run_sample"),
    "inspect": ("config", "skipsearch.cli.inspect:run_inspect"),
    "refstats": ("config", "skipsearch.cli.refstats:run_refstats"),
    "windows": ("config", "skipsearch.cli.windows:run_windows"),
    "analyze": ("config", "skipsearch.cli.analyze:run_analyze"),
    "train-toy": ("train_toy", "skipsearch.cli.train_toy:run_train_toy"),
}
USAGE = f"""usage: skipsearch {{{','.join(COMMANDS)}}} [key=value ...] [hydra flags]

  sweep      run or resume the Optuna study, then export the best schedules
  export     write the best schedule per NFE of a study to YAML
  report     an HTML page of a study: FID figures, trial tables, sample grids
  dashboard  optuna-dashboard on the study storage (dashboard.host, dashboard.port)
  sample     images, grid, npz and FID from schedule=FILE (or the skip config)
  inspect    list the model's skips bottom to top and their coefficients
  refstats   compute and cache the reference statistics of metric.reference
  windows    FID of a schedule within each noise window of the sampler (window study)
  analyze    denoising loss with and without a schedule, pixel and feature space
  train-toy  train the bundled digits model and FID feature network

Overrides follow Hydra's grammar, e.g. `skipsearch sweep search.n_trials=30 logger=none`;
`skipsearch COMMAND --cfg job` prints the composed config."""


def fail(message: str) -> int:
    """Print a one-line error to stderr; return exit code 2."""
    print(f"skipsearch: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def describe(err: Exception) -> str:
    """A one-line description of a Hydra/OmegaConf composition error."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, name = str(err.missing_cfg_file).rpartition("/")
        return (f"{group}={name}: no such config in group '{group}'; "
                f"choose one of: {', '.join(sorted(err.options))}")
    first = str(err).strip().splitlines()
    return "; ".join(line.strip() for line in first if line.strip() and "HYDRA_FULL" not in line)


def runner_of(command: str) -> Callable[[DictConfig], object]:
    """Import the function that runs ``command``."""
    module, func = COMMANDS[command][1].split(":")
    return getattr(importlib.import_module(module), func)


def compose_config(overrides: list[str], config_name: str = "config",
                   with_hydra: bool = False) -> DictConfig:
    """The config a command would see with ``overrides`` (sweeps/ on the search path)."""
    from hydra import compose, initialize_config_dir

    searchpath = f"hydra.searchpath=[file://{REPO_DIR}]"
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=[searchpath, *overrides],
                       return_hydra_config=with_hydra)


def precheck(command: str, overrides: list[str]) -> int:
    """Compose and validate before Hydra writes anything; 0 if fine, 2 after printing why."""
    from ..config import validate

    try:
        cfg = compose_config(overrides, COMMANDS[command][0])
        if command != "train-toy":
            validate(cfg, command)
    except ConfigError as err:
        return fail(str(err))
    except (HydraException, OmegaConfBaseException) as err:
        return fail(describe(err))
    return 0


def run_app(command: str, overrides: list[str]) -> None:
    """Run ``command`` as a Hydra app; a ConfigError becomes exit code 2 with one line."""
    runner = runner_of(command)

    def task(cfg: DictConfig) -> None:
        try:
            if command == "sweep":
                runner(cfg, HydraConfig.get().runtime.output_dir)
            else:
                runner(cfg)
        except ConfigError as err:
            raise SystemExit(fail(str(err))) from None

    app = hydra.main(config_path=str(CONF_DIR), config_name=COMMANDS[command][0],
                     version_base="1.3")(task)
    sys.argv = [f"skipsearch {command}", *overrides]
    app()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``skipsearch`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] == "--version":
        from .. import __version__

        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        return fail(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)}")
    # Ours go last: Hydra's parser takes flags first (--multirun, --cfg job), then overrides.
    overrides = [*rest, f"hydra.searchpath=[file://{REPO_DIR}]", f"hydra.job.name={command}"]
    if not any(arg.startswith("-") for arg in rest):
        code = precheck(command, overrides)
        if code:
            return code
    run_app(command, overrides)
    return 0
