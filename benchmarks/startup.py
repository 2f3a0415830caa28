"""Start-up times of the command line in fresh processes (median of repeats); prints a table.

    python benchmarks/startup.py --repeats 5 --sweep-repeats 3
    python benchmarks/startup.py --root OTHER_CHECKOUT --out benchmarks/results/startup-before.json

Each measure starts a new interpreter (one thread, ``OMP_NUM_THREADS=1``) that imports the
package from ``--root`` (default: this checkout): ``--help``, ``--version``, a configuration
error (``sweep sampler.steps=0``), ``import torch`` alone for scale, and a sweep on the bundled
model from its start until its first trial has finished (one trial of 2 images, fresh folder, so
the reference statistics are computed as on a first run), then ``export`` of that finished
sweep (it reads the study and writes YAML). Writes the raw times as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["search.n_trials=1", "metric.n_samples=2", "search.steps=[3]", "logger=none",
         "device=cpu", "search.confirm_top_k=0", "batch_size=2"]


def environment(root: Path) -> dict[str, str]:
    """The process environment: the package from ``root``, one thread."""
    return {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def time_command(argv: list[str], env: dict[str, str], expect: int, cwd: Path) -> float:
    """Seconds from start to exit of ``argv``; SystemExit if its exit code is not ``expect``."""
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)
    seconds = time.perf_counter() - start
    if out.returncode != expect:
        raise SystemExit(f"{argv} exited {out.returncode}, expected {expect}:\n"
                         f"{out.stderr[-2000:]}")
    return seconds


def time_first_trial(env: dict[str, str], folder: Path) -> float:
    """Seconds from a sweep's start until its first trial is logged as finished."""
    argv = [sys.executable, "-m", "skipsearch.cli", "sweep", *SWEEP, f"out_dir={folder}",
            f"storage.url=sqlite:///{folder}/studies.db"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=folder.parent)  # the trial's line is a log line
    seconds = None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-20:], line]
        if seconds is None and ("Trial 0 finished" in line or "trial 0:" in line):
            seconds = time.perf_counter() - start
    proc.wait()
    if proc.returncode or seconds is None:
        raise SystemExit(f"the sweep exited {proc.returncode} without a trial:\n{''.join(tail)}")
    return seconds


def main() -> None:
    """Time every measure ``--repeats`` times (the sweep ``--sweep-repeats``), print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose package to time")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep-repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/startup.json")
    args = parser.parse_args()
    env = environment(args.root.resolve())
    cli = [sys.executable, "-m", "skipsearch.cli"]
    measures = {
        "--help": ([*cli, "--help"], 0),
        "--version": ([*cli, "--version"], 0),
        "config error (sweep sampler.steps=0)": ([*cli, "sweep", "sampler.steps=0"], 2),
        "import torch": ([sys.executable, "-c", "import torch"], 0),
    }
    times: dict[str, list[float]] = {name: [] for name in measures}
    times["sweep: start to first trial"] = []
    times["export of the finished sweep"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # interleaved, so drift hits every measure alike
            for name, (argv, expect) in measures.items():
                times[name].append(time_command(argv, env, expect, Path(tmp)))
        for r in range(args.sweep_repeats):
            folder = Path(tmp) / f"sweep{r}"
            folder.mkdir()
            times["sweep: start to first trial"].append(time_first_trial(env, folder))
            export = [*cli, "export", *SWEEP, f"out_dir={folder}",
                      f"storage.url=sqlite:///{folder}/studies.db"]
            times["export of the finished sweep"].append(time_command(export, env, 0, Path(tmp)))
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"start-up of {args.root.resolve().name}, {os.cpu_count()} cores, one thread, "
          f"median of {args.repeats} (sweep {args.sweep_repeats}) fresh processes")
    width = max(map(len, medians))
    for name, median in medians.items():
        print(f"  {name:<{width}}  {median:7.2f} s   (min {min(times[name]):.2f}, "
              f"max {max(times[name]):.2f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"root": str(args.root.resolve()), "machine": platform.machine(),
                               "cpus": os.cpu_count(), "python": platform.python_version(),
                               "medians_s": medians, "times_s": times}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
