"""Side-by-side timings of one trial on the bundled digits model; prints ratios, writes JSON.

    python benchmarks/trial_overhead.py --n 500 --steps 6 --repeats 5 --device cpu

(a) sampling with Skip-Tuning hooks at rho != 1 over sampling without hooks (same network,
    same seeds, runs interleaved A/B so drift hits both alike);
(b) a trial's wall time over the time spent inside the network and the feature extractor.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from skipsearch.configuration.weights import file_sha256
from skipsearch.execution.evaluate import evaluate
from skipsearch.execution.generation import generate
from skipsearch.metrics.features import digits_feature_extractor
from skipsearch.metrics.fid import FIDScorer
from skipsearch.metrics.reference import feature_sums, reference_images
from skipsearch.models import LoadedModel
from skipsearch.models.digits import DIGITS_WEIGHTS, load_digits_denoiser
from skipsearch.samplers import edm_sigmas
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.tuning.schedule import SkipSchedule
from skipsearch.tuning.skips import skip_tuning


def sync(device: str) -> None:
    """Wait for queued GPU work so wall clocks mean something."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_sampling(model: LoadedModel, rhos: list[float] | None, n: int, steps: int,
                   batch: int, device: str) -> float:
    """Seconds to draw seeds 0..n-1, with hooks at ``rhos`` or none at all."""
    sigmas = edm_sigmas(steps)
    sync(device)
    start = time.perf_counter()
    for lo in range(0, n, batch):
        seeds = range(lo, min(n, lo + batch))
        if rhos is None:
            generate(model.denoiser, seeds, sigmas, "heun", device)
        else:
            with skip_tuning(model.denoiser, model.denoiser.skips, rhos):
                generate(model.denoiser, seeds, sigmas, "heun", device)
    sync(device)
    return time.perf_counter() - start


class ForwardClock:
    """Accumulates seconds spent inside a module's forward via pre/post hooks."""

    def __init__(self, module: torch.nn.Module, device: str) -> None:
        self.total, self.device, self._t0 = 0.0, device, 0.0
        self.handles = [module.register_forward_pre_hook(self.enter),
                        module.register_forward_hook(self.leave)]

    def enter(self, *_):
        sync(self.device)
        self._t0 = time.perf_counter()

    def leave(self, *_):
        sync(self.device)
        self.total += time.perf_counter() - self._t0

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="images per run")
    parser.add_argument("--steps", type=int, default=6, help="Heun steps (NFE = 2 steps - 1)")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trial_overhead.json"))
    args = parser.parse_args()

    denoiser = load_digits_denoiser().to(args.device)
    model = LoadedModel(denoiser, "digits", DIGITS_WEIGHTS, file_sha256(DIGITS_WEIGHTS))
    k = len(denoiser.skips)
    rhos = [0.7 + 0.3 * i / (k - 1) for i in range(k)]
    timed_sampling(model, rhos, args.batch, 2, args.batch, args.device)  # warm-up

    plain, hooked = [], []
    for _ in range(args.repeats):
        plain.append(timed_sampling(model, None, args.n, args.steps, args.batch, args.device))
        hooked.append(timed_sampling(model, rhos, args.n, args.steps, args.batch, args.device))
    ratios = [h / p for h, p in zip(hooked, plain, strict=True)]

    extractor = digits_feature_extractor().to(args.device)
    scorer = FIDScorer(extractor, feature_sums(extractor, reference_images("digits")), args.device)
    schedule = SkipSchedule(tuple(rhos), "per_skip")
    sampler = SamplerSpec("heun", args.steps)
    walls, inside = [], []
    for _ in range(args.repeats):
        net_clock = ForwardClock(denoiser.net, args.device)
        feat_clock = ForwardClock(extractor.network, args.device)
        sync(args.device)
        start = time.perf_counter()
        evaluate(model, schedule, sampler, range(args.n), args.batch, args.device, scorer)
        sync(args.device)
        walls.append(time.perf_counter() - start)
        inside.append(net_clock.total + feat_clock.total)
        net_clock.remove()
        feat_clock.remove()
    trial_ratios = [w / i for w, i in zip(walls, inside, strict=True)]

    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "n_images": args.n, "steps": args.steps,
        "nfe": 2 * args.steps - 1, "batch": args.batch, "repeats": args.repeats,
        "sampling_s_without_hooks": plain, "sampling_s_with_hooks": hooked,
        "hooks_over_plain_median": statistics.median(ratios),
        "trial_wall_s": walls, "trial_inside_network_and_features_s": inside,
        "trial_wall_over_inside_median": statistics.median(trial_ratios),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"device {result['device']}, {args.n} images, {result['nfe']} NFE, "
          f"batch {args.batch}, {args.repeats} interleaved repeats")
    print(f"(a) sampling with hooks / without hooks: median "
          f"{result['hooks_over_plain_median']:.3f}"
          f"  (runs: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"(b) trial wall / time in network + feature extractor: median "
          f"{result['trial_wall_over_inside_median']:.3f}"
          f"  (wall {statistics.median(walls):.2f}s, inside {statistics.median(inside):.2f}s)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
