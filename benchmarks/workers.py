"""Trials per minute with 1 and 2 workers on one study, side by side; prints a table, writes JSON.

    python benchmarks/workers.py --trials 16 --n 500 --steps 3 --repeats 2

Each configuration sweeps a fresh study (SQLite in a temporary folder) on the bundled digits
model until it holds ``--trials`` trials; every worker is a separate ``skipsearch sweep``
process with one thread (OMP_NUM_THREADS=1). Confirmation and tracking are off.

Each worker runs with the environment variable ``SKIPSEARCH_WORKER_TIMINGS`` set to a folder,
where it writes, when it ends, where its main thread spent its time (``WorkerClock`` in
``skipsearch/search/clock.py``). Every second of a worker, from its spawn to its exit, falls
in exactly one of these parts:

- start-up: the interpreter, imports, configuration, model (until the trials begin);
- reference: building the scorer, the reference statistics included (a fresh folder: none
  cached);
- storage: inside Optuna storage calls (ask, tell, attributes, reads), wherever they happen;
- waiting: neither computing nor in a storage call's own work: the lock file of a queued
  trial, sleeping while other workers finish their last trials;
- trials: running trials (sampling, scoring, Optuna's sampler), less their storage calls;
- finish: after the trials (results, exports, the table, the interpreter's exit), less its
  storage calls;
- other: the rest of the trial loop (choosing the next cell).

Three rates: the whole wall time's (trials / the slowest worker's wall time), the steady
state's (each worker's finished trials over the span from its first trial's start to its last
one's end, summed over the workers) and the window's (all finished trials over the span from
the first trial's start to the last one's end, over all workers).
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
import threading
import time
from pathlib import Path

PARTS = ("startup", "reference", "storage", "waiting", "trials", "finish", "other")
FINISHED = ("COMPLETE", "PRUNED")


def worker_parts(clock: dict, spawned: float, exited: float) -> dict[str, float]:
    """One worker's seconds by part (see the module docstring); they add up to its life."""
    wall = clock["wall"]
    parts = {"startup": clock["started"] - spawned + wall.get("startup", 0.0),
             "reference": wall.get("reference", 0.0), "storage": wall.get("storage", 0.0),
             "waiting": wall.get("waiting", 0.0), "trials": wall.get("trial", 0.0),
             "finish": wall.get("finish", 0.0) + max(0.0, exited - clock["ended"]),
             "other": wall.get("loop", 0.0)}
    return {k: round(v, 3) for k, v in parts.items()}


def steady(clocks: list[dict]) -> dict[str, float]:
    """Trials per minute in the steady state and in the window of all workers' trials."""
    rate, count, starts, ends = 0.0, 0, [], []
    for clock in clocks:
        spans = [t for t in clock["trials"] if t["state"] in FINISHED]
        if not spans:
            continue
        first, last = spans[0]["start"], spans[-1]["end"]
        rate += 60 * len(spans) / (last - first)
        count += len(spans)
        starts.append(first)
        ends.append(last)
    return {"steady": rate, "window": 60 * count / (max(ends) - min(starts)),
            "finished": count}


def run_workers(workers: int, trials: int, base: list[str], folder: Path) -> dict:
    """Run ``workers`` processes on one fresh study of ``trials`` trials; what each measured."""
    timings = folder / "timings"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "SKIPSEARCH_WORKER_TIMINGS": str(timings)}
    args = [*base, f"out_dir={folder}", f"search.n_trials={trials}"]
    start = time.perf_counter()
    procs, spawned = [], {}
    for i in range(workers):
        at = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "skipsearch.cli", "sweep", *args,
                                 f"search.worker={i}"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        spawned[proc.pid] = at
    exited, errors = {}, {}

    def wait(proc: subprocess.Popen) -> None:
        errors[proc.pid] = proc.communicate()[1]
        exited[proc.pid] = time.time()

    waiters = [threading.Thread(target=wait, args=(p,)) for p in procs]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    wall = time.perf_counter() - start
    for p in procs:
        if p.returncode:
            raise SystemExit(f"a worker failed:\n{errors[p.pid][-2000:]}")
    clocks = [json.loads((timings / f"{p.pid}.json").read_text()) for p in procs]
    rates = steady(clocks)
    if rates["finished"] != trials:
        raise SystemExit(f"{rates['finished']} trials finished, not {trials}")
    per_worker = []
    for clock in clocks:
        ran = [t for t in clock["trials"] if t["state"] in FINISHED]
        per_worker.append({
            "parts": worker_parts(clock, spawned[clock["pid"]], exited[clock["pid"]]),
            "trials": len(ran), "skipped": len(clock["trials"]) - len(ran),
            "cpu": {k: round(v, 3) for k, v in clock["cpu"].items()},
            "trial_cpu": round(clock["cpu"].get("trial", 0.0), 3),
            "process_cpu": round(clock["process_cpu"], 3),
            "storage_calls": clock["storage_calls"]})
    return {"wall": round(wall, 3), "whole": 60 * trials / wall, "steady": rates["steady"],
            "window": rates["window"], "workers": per_worker}


def mean_parts(run: dict) -> dict[str, float]:
    """Each part's seconds, the mean over the run's workers."""
    return {k: statistics.fmean(w["parts"][k] for w in run["workers"]) for k in PARTS}


def main() -> None:
    """Time 1 and 2 workers (interleaved over repeats), print the parts and rates, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--n", type=int, default=500, help="images per trial")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/workers.json")
    args = parser.parse_args()
    base = [f"search.steps=[{args.steps}]", f"metric.n_samples={args.n}", "logger=none",
            "device=cpu", "search.confirm_top_k=0", "batch_size=250"]
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for workers in (1, 2):
                folder = Path(tmp) / f"w{workers}-r{r}"
                runs[workers].append(run_workers(workers, args.trials, base, folder))
    best = {w: max(rs, key=lambda run: run["steady"]) for w, rs in runs.items()}
    rates = {kind: {w: max(run[kind] for run in rs) for w, rs in runs.items()}
             for kind in ("whole", "steady", "window")}
    print(f"{args.trials} trials of {args.n} images at {2 * args.steps - 1} NFE, bundled model, "
          f"one thread per worker ({os.cpu_count()} cores), best of {args.repeats}\n")
    print("seconds per worker process (mean over the workers of the best steady-state run):")
    print(f"{'workers':>7} {'wall':>6} " + " ".join(f"{k:>9}" for k in PARTS)
          + f" {'trials':>7} {'cpu/trial':>9}")
    for w, run in best.items():
        parts = mean_parts(run)
        ran = [x["trials"] for x in run["workers"]]
        cpu = sum(x["trial_cpu"] for x in run["workers"]) / args.trials
        print(f"{w:>7} {run['wall']:>6.1f} " + " ".join(f"{parts[k]:>9.2f}" for k in PARTS)
              + f" {'+'.join(map(str, ran)):>7} {cpu:>9.3f}")
    print(f"\n{'trials/min':>10} {'1 worker':>9} {'2 workers':>9} {'ratio':>6}")
    for kind, rate in rates.items():
        print(f"{kind:>10} {rate[1]:>9.1f} {rate[2]:>9.1f} {rate[2] / rate[1]:>6.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "args": vars(args), "machine": platform.platform(), "cores": os.cpu_count(),
        "trials_per_minute": rates,
        "ratio": {kind: rate[2] / rate[1] for kind, rate in rates.items()},
        "parts": {w: mean_parts(run) for w, run in best.items()}, "runs": runs}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
