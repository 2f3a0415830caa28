"""Trials per minute with 1 and 2 workers on one study, side by side; prints a table, writes JSON.

    python benchmarks/workers.py --trials 16 --n 500 --steps 3

Each configuration sweeps a fresh study (SQLite in a temporary folder) on the bundled digits
model until it holds ``--trials`` trials; every worker is a separate ``skipsearch sweep``
process with one thread (OMP_NUM_THREADS=1). Confirmation and tracking are off, so the wall
time is the trials plus each process's start-up (imports, model, reference statistics), which
is reported on its own: a sweep of one trial of 2 images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_workers(workers: int, trials: int, base: list[str], folder: Path) -> float:
    """Seconds for ``workers`` processes to finish one study of ``trials`` trials."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = [*base, f"out_dir={folder}", f"search.n_trials={trials}"]
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "skipsearch.cli", "sweep", *args,
                               f"search.worker={i}"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"a worker failed:\n{err[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    """Time 1 and 2 workers (interleaved over repeats), print trials per minute, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--n", type=int, default=500, help="images per trial")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/workers.json")
    args = parser.parse_args()
    base = [f"search.steps=[{args.steps}]", f"metric.n_samples={args.n}", "logger=none",
            "device=cpu", "search.confirm_top_k=0", "batch_size=250"]
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        startup = run_workers(1, 1, [*base, "metric.n_samples=2"], Path(tmp) / "warm")
        for r in range(args.repeats):
            for workers in (1, 2):
                folder = Path(tmp) / f"w{workers}-r{r}"
                times[workers].append(run_workers(workers, args.trials, base, folder))
    rate = {w: args.trials / (min(t) / 60) for w, t in times.items()}
    print(f"{args.trials} trials of {args.n} images at {2 * args.steps - 1} NFE, bundled model, "
          f"one thread per worker ({os.cpu_count()} cores); one process start-up: "
          f"{startup:.1f} s\n")
    print(f"{'workers':>7} {'best wall s':>11} {'trials/min':>10}")
    for w in (1, 2):
        print(f"{w:>7} {min(times[w]):>11.1f} {rate[w]:>10.1f}")
    print(f"\n2 workers / 1 worker, trials per minute: {rate[2] / rate[1]:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "seconds": times, "trials_per_minute": rate,
                               "startup_seconds": startup, "machine": platform.platform()},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
