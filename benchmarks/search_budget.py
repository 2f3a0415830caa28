"""Search strategies on one budget of generated images, side by side; prints a table, writes JSON.

    python benchmarks/search_budget.py --steps 3 --n 1000 --budget 49000 --seeds 0 1 2
    python benchmarks/search_budget.py --skip per_level --n 250 --budget 12000 --seeds 0 1 2

On the bundled digits model (Heun, one step count, coefficients in the digits sweep's bounds)
these searches spend the same number of generated images:

- TPE with staged FID (25%, 50%, 100% of ``--n`` images) and successive halving per NFE,
- random search, every trial at ``--n`` images,
- a space-filling design (scrambled Sobol points, Optuna's QMC sampler) at ``--n`` images,
- a grid (the paper's style): 7 x 7 over rho_top x rho_bottom with ``--skip linear``; with
  ``per_level`` / ``per_skip`` (one coefficient per level / per skip) a full grid explodes
  (7 points each: 7^3 or 7^6 trials), so the grid gets the most points per coefficient that the
  budget allows (``--grid-points``, default: as many as fit).

A trial counts only if it finished inside the budget. For each search: the best FID it reached
(at the full ``--n`` images, on the same seeds for every trial) and the images it had generated
when it first came within 2% of the best FID any search found. Stochastic searches run once per
``--seeds`` value; the grid is deterministic.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import FrozenTrial, TrialState

from skipsearch.cli import compose_config
from skipsearch.configuration.build import build
from skipsearch.execution.evaluate import evaluate
from skipsearch.execution.runtime import build_model, build_scorer, setup_device
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.search.allocate import SkippedTrialError
from skipsearch.search.objective import TrialContext, make_objective
from skipsearch.search.pruning import make_pruner
from skipsearch.search.space import build_space
from skipsearch.search.study import make_sampler
from skipsearch.tracking import NoTracker
from skipsearch.tuning.schedule import SkipSchedule, param_names

METHODS = {
    "TPE + successive halving": ["search=tpe", "pruner=successive_halving"],
    "random": ["search=random"],
    "Sobol design": ["search=random"],  # the sampler is replaced by Optuna's QMC sampler
}


def grid_points(dim: int, trials: int) -> int:
    """The most points per coefficient whose full grid fits in ``trials`` (at least 2)."""
    points = 2
    while (points + 1) ** dim <= trials:
        points += 1
    return points


def run_search(cfg: DictConfig, model, scorer, device: str, budget: int,
               folder: Path) -> list[dict]:
    """Trials of one search until ``budget`` images: images so far, FID, complete or not."""
    levels = [p.level for p in model.denoiser.skips]
    settings = build(cfg, "sweep")
    space = build_space(settings.skip.parameterization, settings.skip.space_bounds(),
                        settings.search.steps, levels, samplers=settings.samplers)
    n = settings.metric.search.count
    stages = list(settings.pruner.stages)
    sampler = make_sampler(settings.search, space, "benchmark")
    if cfg.search.get("qmc"):
        with warnings.catch_warnings():  # Optuna calls its QMC sampler experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True,
                                                 seed=int(cfg.search.seed),
                                                 warn_independent_sampling=False)
    study = optuna.create_study(storage=f"sqlite:///{folder}/study.db", sampler=sampler,
                                pruner=make_pruner(settings.pruner))
    ctx = TrialContext(model, space, range(n), settings.execution.batch_size, device, scorer,
                       NoTracker(), stages)
    log: list[dict] = []

    def spend(study: optuna.Study, trial: FrozenTrial) -> None:
        if "skipped" in trial.user_attrs:  # a repeated draw: no images, not counted
            return
        used = (log[-1]["images"] if log else 0) + int(trial.user_attrs.get("n_samples", 0))
        if used > budget:
            study.stop()
            return
        complete = trial.state == TrialState.COMPLETE
        log.append({"trial": trial.number, "images": used, "complete": complete,
                    "fid": trial.value if complete else None, "params": trial.params})
        if used >= budget:
            study.stop()

    study.optimize(make_objective(ctx, space.cells()[0], 100_000), n_trials=100_000,
                   callbacks=[spend], catch=(SkippedTrialError,))
    return log


def images_to_reach(log: list[dict], target: float) -> int | None:
    """Images generated when a complete trial first reached FID <= ``target``."""
    return next((e["images"] for e in log if e["complete"] and e["fid"] <= target), None)


def main() -> None:
    """Run every search, print the table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="Heun steps (NFE = 2 steps - 1)")
    parser.add_argument("--skip", default="linear", choices=["linear", "per_level", "per_skip"],
                        help="the parameterization searched")
    parser.add_argument("--grid-points", type=int, default=None,
                        help="grid points per coefficient (default: the most that fit)")
    parser.add_argument("--n", type=int, default=1000, help="images per full trial")
    parser.add_argument("--budget", type=int, default=49_000, help="images per search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/search_budget.json")
    args = parser.parse_args()
    base = [f"search.steps=[{args.steps}]", f"metric.n_samples={args.n}", "logger=none",
            f"device={args.device}", "search.n_startup_trials=8", f"skip={args.skip}",
            "skip.space.default={low:0.5,high:1.2}"]
    cfg = compose_config(base)
    settings = build(cfg, "sample")
    device = setup_device(settings)
    model = build_model(settings, device)
    scorer = build_scorer(settings, device, model)
    baseline = evaluate(model, SkipSchedule.identity(len(model.denoiser.skips)),
                        SamplerSpec.from_config(cfg, args.steps), range(args.n),
                        settings.execution.batch_size, device, scorer).score
    dim = len(param_names(args.skip, [p.level for p in model.denoiser.skips]))
    points = args.grid_points or grid_points(dim, args.budget // args.n)
    methods = {**METHODS, f"grid {points}^{dim}": ["search=grid",
                                                  f"search.grid_points={points}"]}
    methods["Sobol design"] = [*methods["Sobol design"], "+search.qmc=true"]
    runs = []
    for method, overrides in methods.items():
        for seed in ([0] if method.startswith("grid") else args.seeds):
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                log = run_search(compose_config([*base, *overrides, f"search.seed={seed}"]),
                                 model, scorer, device, args.budget, Path(tmp))
            runs.append({"method": method, "seed": seed, "log": log,
                         "seconds": round(time.perf_counter() - start, 1)})
            print(f"{method} (seed {seed}): {len(log)} trials in {runs[-1]['seconds']} s",
                  flush=True)
    best = min(e["fid"] for r in runs for e in r["log"] if e["complete"])
    target = 1.02 * best
    print(f"\nbundled digits model, Heun {args.steps} steps ({2 * args.steps - 1} NFE), "
          f"{args.skip} ({dim} coefficients), "
          f"{args.n} images per full trial, budget {args.budget} images per search; "
          f"baseline (rho = 1) FID {baseline:.2f}; best of all {best:.2f}, "
          f"target (+2%) {target:.2f}\n")
    print(f"{'search':<26} {'seed':>4} {'trials':>6} {'pruned':>6} {'best FID':>9} "
          f"{'images to reach target':>23}")
    for r in runs:
        log = r["log"]
        r["best_fid"] = min(e["fid"] for e in log if e["complete"])
        r["images_to_target"] = images_to_reach(log, target)
        r["trials"], r["pruned"] = len(log), sum(not e["complete"] for e in log)
        reach = r["images_to_target"]
        print(f"{r['method']:<26} {r['seed']:>4} {r['trials']:>6} {r['pruned']:>6} "
              f"{r['best_fid']:>9.2f} {reach if reach is not None else 'not reached':>23}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "baseline_fid": baseline, "best_fid": best,
                               "target_fid": target, "runs": runs,
                               "machine": platform.platform(), "device": device}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
