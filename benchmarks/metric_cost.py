"""What each metric adds to a trial and to a confirmation; prints ratios, writes JSON.

    python benchmarks/metric_cost.py --n 1000 --steps 4 --repeats 3 --device cpu

(a) a trial on the bundled digits model scored on digits FID alone, and on digits FID plus
    the second ruler (digits FD-AE), interleaved A/B on the same seeds;
(b) the statistics alone on synthetic 2048-d features (InceptionV3's size): the Frechet
    distance, KID and precision/recall, each fed ``--features`` generated features against
    as many reference ones, then scored once and with each of 10 blocks left out (what a
    confirmation's interval costs). The feature networks' own cost (InceptionV3, DINOv2
    ViT-L) is a GPU question: benchmarks/adm_throughput.py is that table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from skipsearch.configuration.weights import file_sha256
from skipsearch.execution.evaluate import evaluate
from skipsearch.metrics.build import build_scorer
from skipsearch.metrics.frechet import Frechet
from skipsearch.metrics.kid import KID
from skipsearch.metrics.precision_recall import PrecisionRecall
from skipsearch.metrics.reference import FeatureSums
from skipsearch.models import LoadedModel
from skipsearch.models.digits import DIGITS_WEIGHTS, load_digits_denoiser
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.tuning.schedule import SkipSchedule


def sync(device: str) -> None:
    """Wait for queued GPU work so wall clocks mean something."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    """Seconds ``fn()`` takes, the device drained before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def trial_times(args, device: str) -> dict:
    """(a): trial wall seconds with the search metric alone and with the second ruler."""
    denoiser = load_digits_denoiser().to(device)
    model = LoadedModel(denoiser, "digits", DIGITS_WEIGHTS, file_sha256(DIGITS_WEIGHTS))
    k = len(denoiser.skips)
    schedule = SkipSchedule(tuple(0.7 + 0.3 * i / (k - 1) for i in range(k)), "per_skip")
    sampler = SamplerSpec("heun", args.steps)
    with tempfile.TemporaryDirectory() as cache:
        scorer = build_scorer(["digits_fid", "digits_fd_ae"], {}, "digits", Path(cache), device)
    runs = {"digits_fid": ["digits_fid"], "digits_fid+digits_fd_ae": list(scorer.names)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    confirm: dict[str, list[float]] = {name: [] for name in runs}
    evaluate(model, schedule, sampler, range(args.batch), args.batch, device, scorer)  # warm
    for _ in range(args.repeats):
        for name, metrics in runs.items():
            times[name].append(timed(lambda m=metrics: evaluate(
                model, schedule, sampler, range(args.n), args.batch, device, scorer,
                metrics=m), device))
            confirm[name].append(timed(lambda m=metrics: evaluate(
                model, schedule, sampler, range(args.n), args.batch, device, scorer,
                metrics=m, blocks=10), device))
    base = statistics.median(times["digits_fid"])
    base_confirm = statistics.median(confirm["digits_fid"])
    return {"trial_s": times, "confirm_s": confirm,
            "trial_over_fid_alone": {n: statistics.median(t) / base for n, t in times.items()},
            "confirm_over_fid_alone": {n: statistics.median(t) / base_confirm
                                       for n, t in confirm.items()}}


def statistic_times(args, device: str) -> dict:
    """(b): seconds to feed, score and leave out each block, per statistic."""
    g = torch.Generator().manual_seed(0)
    d, n = 2048, args.features
    reference = torch.randn(n, d, generator=g, dtype=torch.float64).to(device)
    generated = (torch.randn(n, d, generator=g, dtype=torch.float64) * 1.1 + 0.05).to(device)
    sums = FeatureSums(reference.sum(0), reference.T @ reference, n)
    stats = {"frechet": lambda: Frechet(sums), "kid": lambda: KID(reference),
             "precision_recall": lambda: PrecisionRecall(reference)}
    out = {}
    for name, make in stats.items():
        build = timed(make, device)
        statistic = make()
        acc = statistic.accumulator(10, n)
        feed = timed(lambda a=acc: [a.add(b) for b in generated.split(args.batch)], device)
        score = timed(lambda a=acc: a.value(), device)
        leave_out = timed(lambda a=acc: [a.value(b) for b in range(10)], device)
        out[name] = {"build_s": build, "feed_s": feed, "score_s": score,
                     "ten_leave_outs_s": leave_out}
    frechet = out["frechet"]["feed_s"] + out["frechet"]["score_s"]
    for row in out.values():
        row["search_over_frechet"] = (row["feed_s"] + row["score_s"]) / frechet
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images per trial")
    parser.add_argument("--steps", type=int, default=4, help="Heun steps (NFE = 2 steps - 1)")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--features", type=int, default=2000,
                        help="generated (and reference) 2048-d features for (b)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metric_cost.json"))
    args = parser.parse_args()
    result = {"device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
              "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "n_images": args.n, "nfe": 2 * args.steps - 1, "batch": args.batch,
              "repeats": args.repeats, "features": args.features,
              "trial": trial_times(args, args.device),
              "statistics": statistic_times(args, args.device)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    trial = result["trial"]
    print(f"device {result['device']}, {args.n} images at {result['nfe']} NFE, "
          f"{args.repeats} interleaved repeats")
    for name in trial["trial_s"]:
        print(f"(a) {name:24s} trial {statistics.median(trial['trial_s'][name]):6.2f}s "
              f"(x{trial['trial_over_fid_alone'][name]:.3f}), confirmation with 10 blocks "
              f"{statistics.median(trial['confirm_s'][name]):6.2f}s "
              f"(x{trial['confirm_over_fid_alone'][name]:.3f})")
    for name, row in result["statistics"].items():
        print(f"(b) {name:16s} on {args.features} x 2048-d: build {row['build_s']:6.2f}s, "
              f"feed {row['feed_s']:6.2f}s, score {row['score_s']:6.2f}s, 10 leave-outs "
              f"{row['ten_leave_outs_s']:6.2f}s; search cost x{row['search_over_frechet']:.2f} "
              "of the Frechet distance's")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
