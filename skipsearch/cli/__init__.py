"""The ``skipsearch`` command: one Hydra app per subcommand, sharing the conf/ tree.

    skipsearch sweep search.n_trials=30
    skipsearch export
    skipsearch sample schedule=outputs/exports/digits-heun-linear/best.yaml
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ..configuration.commands import COMMANDS
from ..configuration.errors import (
    ConfigError,
    Interrupted,
    RunFailedError,
    Terminated,
    describe_failure,
    environment_cause,
)
from ..configuration.paths import CONF_DIR, CONFIG_ROOT

# commands that only read (or delete) sweeps of a storage: no Hydra run, no torch
TOOLS = ("studies", "show", "compare")
COMMAND_LINES = "\n".join(f"  {c.name:<10} {c.about}" for c in COMMANDS.values())
USAGE = f"""usage: skipsearch {{{','.join(COMMANDS)}}} [key=value ...] [hydra flags]
       skipsearch {{{','.join(TOOLS)}}} ... [key=value ...]

{COMMAND_LINES}

  studies            the sweeps in storage.url: model, metric, cells, trials, best per NFE
  studies delete S   delete sweep S (asks first; --yes does not; --force: while it runs)
  show S             sweep S's scores per NFE and where its exports are;
                     --format=markdown|latex|csv prints the table alone, for a paper or sheet
  compare A B        two sweeps' best score per NFE side by side, and how each was measured

export, report and dashboard take --study NAME: the sweep's own record gives its model and
metric settings, so the sweep's overrides need not be typed again.

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
    module, func = COMMANDS[command].runner.split(":")
    return getattr(importlib.import_module(module), func)


def search_path(folders: Sequence[str] = ()) -> str:
    """``hydra.searchpath``: the user's config folders first, then the one of conf/, sweeps/."""
    entries = [f if "://" in f else f"file://{Path(f).resolve()}" for f in folders]
    return f"hydra.searchpath=[{','.join([*entries, f'file://{CONFIG_ROOT}'])}]"


SEARCHPATH = search_path()  # sweeps/ beside conf/


def our_overrides(command: str, folders: Sequence[str] = ()) -> list[str]:
    """What every job of ``command`` gets besides the user's: the search path, the job name."""
    return [search_path(folders), f"hydra.job.name={command}"]


def user_folders(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` without ``--config-dir DIR`` and ``hydra.searchpath=[...]``, and those folders.

    A user's presets and model configs live in folders of their own (``sweeps/``, ``model/``
    ... inside them); they join skipsearch's search path instead of replacing it.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept, folders = [], []
    values = iter(args)
    for arg in values:
        if arg in ("--config-dir", "-cd"):
            folders.append(next(values, ""))
        elif arg.startswith(("--config-dir=", "-cd=")):
            folders.append(arg.split("=", 1)[1])
        elif arg.split("=", 1)[0] == "hydra.searchpath":
            value = OverridesParser.create().parse_override(arg).value()
            folders += [str(v) for v in (value if isinstance(value, list) else [value])]
        else:
            kept.append(arg)
    return kept, folders


def compose_config(overrides: list[str], config_name: str = "config",
                   with_hydra: bool = False) -> DictConfig:
    """The config a command would see with ``overrides`` (sweeps/ on the search path)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        given = any(o.split("=", 1)[0] == "hydra.searchpath" for o in overrides)
        return compose(config_name, overrides=[*([] if given else [SEARCHPATH]), *overrides],
                       return_hydra_config=with_hydra)


# Hydra's flags that take a value, those that only print or plan (no check needed: nothing
# runs), and those that print the composed config (composition is checked, not the values).
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name",
               "-cn", "--experimental-rerun", "--shell-completion", "-sc")
PASS_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc",
              "--config-path", "-cp", "--config-name", "-cn", "--experimental-rerun")
PRINT_FLAGS = ("--cfg", "-c")
MULTIRUN_FLAGS = ("--multirun", "-m")
MAX_CHECKED_JOBS = 16  # a larger multirun checks its first 16 jobs up front, each job itself


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Hydra's flags (with their values) and the overrides, in their order."""
    flags, overrides = [], []
    values = iter(args)
    for arg in values:
        if arg in VALUE_FLAGS:
            flags += [arg, next(values, "")]
        elif arg.startswith("-") and "=" not in arg:
            flags.append(arg)
        else:
            overrides.append(arg)
    return flags, overrides


def not_an_override(overrides: list[str]) -> str | None:
    """A message for an argument without '=' (often a path with an unquoted space)."""
    for i, arg in enumerate(overrides):
        if "=" in arg or arg.startswith("~"):
            continue
        if i > 0 and "=" in overrides[i - 1]:
            joined = f"{overrides[i - 1]} {arg}"
            return (f"{arg!r} is not an override (key=value); if it belongs to the value before "
                    f"it (a path with a space), quote the whole override: '{joined}'")
        return f"{arg!r} is not an override; give key=value, e.g. search.n_trials=30"
    return None


def multirun_jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of each job a ``--multirun`` starts (Hydra's basic sweep expansion)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def job_key(overrides: Sequence[str]) -> tuple[str, ...]:
    """A job's own overrides (Hydra's are left out), as Hydra hands them to the job."""
    return tuple(o for o in overrides if not o.lstrip("+~").startswith("hydra."))


def precheck(command: str, overrides: list[str], values: bool = True,
             built: dict | None = None) -> int:
    """Compose and check before Hydra writes anything; 0 if fine, 2 after printing why.

    The checked settings go into ``built`` under the job's overrides, for its runner. With
    ``values=False`` only composition is checked (for ``--cfg``, which prints the config).
    """
    from ..configuration.build import build, check_schedule_overrides
    from ..train.settings import check_train_toy

    try:
        cfg = compose_config(overrides, COMMANDS[command].config)
        if not values:
            return 0
        if command == "train-toy":
            check_train_toy(cfg)
        else:
            check_schedule_overrides(command, overrides)
            settings = build(cfg, command)
            if built is not None:
                built[job_key(overrides)] = settings
    except ConfigError as err:
        return fail(str(err))
    except (HydraException, OmegaConfBaseException) as err:
        return fail(unknown_key(err, overrides, command) or describe(err))
    return 0


def unknown_key(err: Exception, overrides: list[str], command: str) -> str | None:
    """For an override of a key the config lacks: the line naming it and the nearest keys."""
    import difflib
    import re

    from omegaconf import OmegaConf

    found = re.match(r"Could not override '([^']+)'", str(err))
    if found is None:
        return None
    key = found.group(1)
    given = next((o for o in overrides if o.split("=", 1)[0] == key), key)
    rest = [o for o in overrides if o != given]
    try:
        known = leaf_keys(OmegaConf.to_container(compose_config(rest, COMMANDS[command].config)))
    except (HydraException, OmegaConfBaseException):
        return None  # another override is wrong too: Hydra's own message
    close = difflib.get_close_matches(key, known, n=2, cutoff=0.75)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{given}: no such key; {hint}`skipsearch {command} --cfg job` prints every key"


def leaf_keys(node: object, prefix: str = "") -> list[str]:
    """Every dotted path to a value of a nested config container."""
    if not isinstance(node, dict):
        return [prefix.rstrip(".")] if prefix else []
    return [k for name, value in node.items() for k in leaf_keys(value, f"{prefix}{name}.")]


def precheck_args(command: str, args: list[str], built: dict | None = None,
                  folders: Sequence[str] = ()) -> int:
    """``precheck`` for the command line as given: plain, ``--multirun`` (each job), ``--cfg``.

    The settings of each checked job go into ``built`` (see ``precheck``); ``folders`` are the
    user's config folders (``user_folders``).
    """
    flags, overrides = split_args(args)
    if any(f in PASS_FLAGS for f in flags):
        return 0
    message = not_an_override(overrides)
    if message is not None:
        return fail(message)
    ours = our_overrides(command, folders)
    jobs = [overrides]
    if any(f in MULTIRUN_FLAGS for f in flags):
        try:
            jobs = multirun_jobs(overrides)
        except (HydraException, OmegaConfBaseException) as err:
            return fail(describe(err))
    values = not any(f in PRINT_FLAGS for f in flags)
    for job in jobs[:MAX_CHECKED_JOBS]:
        code = precheck(command, [*job, *ours], values, built)
        if code:
            return code
    return 0


@contextmanager
def sigterm_interrupts() -> Iterator[list[int]]:
    """Within: SIGTERM raises Terminated in the main thread, as Ctrl-C raises KeyboardInterrupt.

    SLURM and Kubernetes send SIGTERM before they kill a job; the trial running then ends as
    with Ctrl-C. The list yielded receives each SIGTERM; those after the first are ignored while
    the first unwinds. The handler before is restored on the way out.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers belong to the main thread
        return

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Terminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def interrupted(err: KeyboardInterrupt, terminated: bool) -> int:
    """One line for Ctrl-C (exit code 130) or SIGTERM (143): what was finished, how to resume."""
    text = str(err) if isinstance(err, Interrupted) else "interrupted"
    if terminated:
        text = "terminated by SIGTERM" + text.removeprefix("interrupted")
    print(f"skipsearch: {text}", file=sys.stderr)
    return 128 + signal.SIGTERM if terminated else 130


def guarded(call: Callable[[], object]) -> int:
    """Run ``call``; a known failure becomes one line on stderr and its exit code.

    2: bad input (ConfigError); 130: Ctrl-C; 143: SIGTERM, handled as Ctrl-C; 1: a failure
    after work began (disk full, study database gone, sweep deleted), with how to resume.
    """
    with sigterm_interrupts() as received:
        try:
            call()
        except ConfigError as err:
            return fail(str(err))
        except KeyboardInterrupt as err:
            return interrupted(err, bool(received) or isinstance(err, Terminated))
        except RunFailedError as err:
            print(f"skipsearch: error: {err}", file=sys.stderr)
            return 1
        except Exception as err:
            cause = environment_cause(err)  # a full disk, a failed database; else a bug
            if cause is None:
                raise
            print(f"skipsearch: error: {describe_failure(cause)}; run the same command again "
                  "once that is fixed", file=sys.stderr)
            return 1
    return 0


def run_app(command: str, overrides: list[str], built: dict | None = None) -> None:
    """Run ``command`` as a Hydra app; failures become one line and an exit code (``guarded``).

    ``built``: settings checked up front, by job overrides; a job not there is checked by its
    runner (a multirun's later jobs, or a job in another process).
    """
    runner = runner_of(command)

    def task(cfg: DictConfig) -> None:
        hydra_cfg = HydraConfig.get()
        settings = (built or {}).get(job_key(hydra_cfg.overrides.task))
        if command == "sweep":
            code = guarded(lambda: runner(cfg, hydra_cfg.runtime.output_dir, settings))
        elif command == "train-toy":
            code = guarded(lambda: runner(cfg))
        else:
            code = guarded(lambda: runner(cfg, settings))
        if code:
            raise SystemExit(code)

    app = hydra.main(config_path=str(CONF_DIR), config_name=COMMANDS[command].config,
                     version_base="1.3")(task)
    sys.argv = [f"skipsearch {command}", *overrides]
    app()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``skipsearch`` console script."""
    try:
        return run_main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("skipsearch: interrupted", file=sys.stderr)
        return 130


def run_main(argv: list[str]) -> int:
    """Parse the command, check its arguments up front, then run it."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] == "--version":
        from .. import __version__

        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    if command in TOOLS:
        from .studies import run_tool

        return run_tool(command, rest)
    if command not in COMMANDS:
        return fail(f"unknown command {command!r}; choose one of: "
                    f"{', '.join([*COMMANDS, *TOOLS])}")
    if COMMANDS[command].study_flag and any(a.split("=", 1)[0] == "--study" for a in rest):
        from .studies import study_args

        rest, code = study_args(command, rest)
        if code:
            return code
    rest, folders = user_folders(rest)
    for folder in folders:
        local = folder.removeprefix("file://")
        if "://" not in folder and (not local or not Path(local).is_dir()):
            return fail(f"--config-dir={folder!r}: no such folder; give a folder of your own "
                        "configs (laid out like conf/ and sweeps/)")
    built: dict = {}
    code = precheck_args(command, rest, built, folders)
    if code:
        return code
    # Overrides first, then Hydra's flags: argparse reads the overrides as one run of
    # positionals, and a flag with an optional value (--info, --cfg) must not take one.
    flags, overrides = split_args(rest)
    run_app(command, [*overrides, *our_overrides(command, folders), *flags], built)
    return 0
