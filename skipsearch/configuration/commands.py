"""Each command declared once: its config, runner, own options and what it reads and writes.

Torch-free: the command line (``cli``), the Python door (``api``) and the checks
(``config.build``) all read these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """What a command is, for everything that runs or checks it."""

    name: str
    about: str  # one line of the usage text
    runner: str  # "module:function" that runs it
    config: str = "config"  # its primary config in conf/
    writes: tuple[str, ...] = ()  # config keys of the folders it writes, besides out_dir
    study: bool = False  # reads or writes a sweep's storage
    study_flag: bool = False  # takes --study NAME (the sweep's record fills its settings)
    samples: bool = False  # draws images from the model
    scores: bool = False  # scores what it draws
    schedule_sections: tuple[str, ...] = ()  # what of schedule=FILE it reads
    fixed_by_schedule: tuple[str, ...] = ()  # config groups schedule=FILE fixes


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("sweep", "run or resume the Optuna study, then export the best schedules",
            "skipsearch.cli.sweep:run_sweep", writes=("export_dir",), study=True,
            samples=True, scores=True),
    Command("export", "write the best schedule per NFE of a study to YAML",
            "skipsearch.cli.export:run_export", writes=("export_dir",), study=True,
            study_flag=True),
    Command("report", "an HTML page of a study: score figures, trial tables, sample grids",
            "skipsearch.cli.report:run_report", writes=("report.dir",), study=True,
            study_flag=True, samples=True),
    Command("dashboard", "optuna-dashboard on the study storage (dashboard.host, .port)",
            "skipsearch.cli.dashboard:run_dashboard", study=True, study_flag=True),
    Command("sample", "images, grid, npz and score from schedule=FILE (or the skip config)",
            "skipsearch.cli.sample:run_sample", writes=("sample.dir",), samples=True,
            scores=True, schedule_sections=("model", "sampler", "score"),
            fixed_by_schedule=("skip", "sampler")),
    Command("inspect", "list the model's skips bottom to top and their coefficients",
            "skipsearch.cli.inspect:run_inspect", schedule_sections=("model",),
            fixed_by_schedule=("skip",)),
    Command("refstats", "compute and cache the reference statistics of metric.reference",
            "skipsearch.cli.refstats:run_refstats", scores=True),
    Command("windows", "the score of a schedule within each noise window of the sampler",
            "skipsearch.cli.windows:run_windows", samples=True, scores=True,
            schedule_sections=("model", "sampler"), fixed_by_schedule=("skip", "sampler")),
    Command("analyze", "denoising loss with and without a schedule, pixel and feature space",
            "skipsearch.cli.analyze:run_analyze", samples=True, scores=True,
            schedule_sections=("model", "sampler"), fixed_by_schedule=("skip", "sampler")),
    Command("train-toy", "train the bundled digits model and its two feature networks",
            "skipsearch.cli.train_toy:run_train_toy", config="train_toy"),
)}
