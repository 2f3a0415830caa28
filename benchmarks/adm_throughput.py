"""Images per second of EDM's ADM ImageNet-64 network at its real size (random weights).

    python benchmarks/adm_throughput.py                # on a GPU: the whole table, < 5 minutes
    python benchmarks/adm_throughput.py --tiny --device cpu --compile none   # a smoke run

Side by side, for each network precision (fp32, bf16, fp16 under autocast):

- ``plain``: a loop written directly from EDM's Algorithm 1 (Heun, float64 state, per-seed
  generators on the device) that calls the network; no skipsearch code on its path;
- ``ours``: skipsearch's trial sampling (``generate_fitting`` on the model that a trial uses),
  without hooks, with Skip-Tuning hooks (the paper's rho, 0.78 at the bottom to 1.0 at the top),
  with hooks and a CUDA graph per network evaluation, and torch.compile'd without and with hooks.

Every configuration samples the same seeds; rows are measured in turns (``--repeats`` rounds),
the median is reported with its ratio to the plain loop of the same precision. Compilations
that would pass ``--budget`` seconds are skipped and marked so. On CUDA, one batch of our loop
also runs under ``torch.cuda.set_sync_debug_mode`` to count host synchronizations. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skipsearch.execution.acceleration import GraphedCall, accelerate
from skipsearch.execution.evaluate import generate_fitting
from skipsearch.execution.precision import Precision
from skipsearch.models import LoadedModel
from skipsearch.models.edm import EDMNetworkDenoiser
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.tuning.schedule import SkipSchedule, linear_coefficients
from tests.support.edm_format.writer import build_network

ADM_IMAGENET64 = {"img_resolution": 64, "img_channels": 3, "label_dim": 1000,
                  "model_type": "DhariwalUNet", "model_channels": 192,
                  "channel_mult": [1, 2, 3, 4], "num_blocks": 3, "attn_resolutions": [32, 16, 8]}
TINY = {**ADM_IMAGENET64, "img_resolution": 16, "model_channels": 32, "num_blocks": 1,
        "attn_resolutions": [8]}


def sync(device: str) -> None:
    """Wait for queued GPU work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_heun(net: torch.nn.Module, seeds: range, steps: int, device: str,
               precision: str) -> torch.Tensor:
    """EDM Algorithm 1 written out: t_i from Eq. 5, Euler step, then the 2nd-order correction."""
    sigma_min, sigma_max, rho = 0.002, 80.0, 7.0
    i = torch.arange(steps, dtype=torch.float64, device=device)
    t = (sigma_max ** (1 / rho) + i / (steps - 1) * (sigma_min ** (1 / rho)
                                                     - sigma_max ** (1 / rho))) ** rho
    t = torch.cat([t, torch.zeros(1, dtype=torch.float64, device=device)])
    shape = (net.img_channels, net.img_resolution, net.img_resolution)
    x = torch.stack([torch.randn(shape, device=device,
                                 generator=torch.Generator(device).manual_seed(s))
                     for s in seeds]).to(torch.float64) * t[0]
    labels = torch.nn.functional.one_hot(torch.arange(seeds.start, seeds.stop, device=device)
                                         % net.label_dim, net.label_dim).float()

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def denoised(x_: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        with torch.autocast(torch.device(device).type, half, enabled=half is not None):
            out = net(x_.to(torch.float32), sigma.to(torch.float32).expand(len(x_)), labels)
        return out.to(torch.float64)

    for n in range(steps):
        d = (x - denoised(x, t[n])) / t[n]
        x_euler = x + (t[n + 1] - t[n]) * d
        if n == steps - 1:
            x = x_euler
        else:
            d_next = (x_euler - denoised(x_euler, t[n + 1])) / t[n + 1]
            x = x + (t[n + 1] - t[n]) * (d + d_next) / 2
    return x.to(torch.float32).clamp(-1, 1)


def timed(run: Callable[[], torch.Tensor], device: str) -> tuple[float, torch.Tensor]:
    """Seconds of one call, the device drained before and after; and what it returned."""
    sync(device)
    start = time.perf_counter()
    out = run()
    sync(device)
    return time.perf_counter() - start, out


def host_syncs(run: Callable[[], torch.Tensor]) -> int:
    """Host synchronizations during ``run`` as counted by torch's CUDA sync debug mode."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="Heun steps: NFE = 2 steps - 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", default="default",
                        help="torch.compile mode for the compiled rows, or none")
    parser.add_argument("--budget", type=float, default=270.0,
                        help="seconds; compilations that would pass it are skipped")
    parser.add_argument("--tiny", action="store_true", help="a small ADM, for a smoke run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/adm_throughput.json"))
    args = parser.parse_args()
    began, device = time.perf_counter(), args.device
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True

    layout = ADM_IMAGENET64 if not args.tiny else TINY
    net = build_network("EDMPrecond", **layout).eval().requires_grad_(False).to(device)
    state = net.state_dict()
    seeds = range(args.batch)
    sampler = SamplerSpec("heun", args.steps)
    k = len(EDMNetworkDenoiser(net).skips)
    schedule = SkipSchedule(linear_coefficients(1.0, 0.78, k))

    def model(dtype: str, hooks: bool, mode: str | None, graph: bool) -> LoadedModel:
        """A fresh denoiser on the same weights, prepared as a trial would prepare it."""
        copy = build_network("EDMPrecond", **layout).eval().requires_grad_(False).to(device)
        copy.load_state_dict(state)
        bare = LoadedModel(EDMNetworkDenoiser(copy), "adm", Path("random"), f"adm-{dtype}")
        policy = Precision(dtype, "float64", device.startswith("cuda") and dtype != "fp32")
        ready = accelerate(bare, policy, mode, cuda_graph=False)
        if not hooks:  # the same preparation, minus the hooks (removed before the first call,
            ready.hooks.remove()  # so a compiled model is traced without them)
            ready.hooks = None
            return ready
        ready.hooks.load(schedule)
        if graph:
            ready.network = GraphedCall(ready.denoiser)
        return ready

    rows = []
    for dtype in args.dtypes:
        runs: dict[str, Callable[[], torch.Tensor]] = {
            "plain": lambda d=dtype: plain_heun(net, seeds, args.steps, device, d)}
        group = [{"precision": dtype, "loop": "plain", "first_call_s": timed(runs["plain"],
                                                                            device)[0]}]
        variants = [("ours", False, None, False), ("ours + hooks", True, None, False)]
        if device.startswith("cuda"):
            variants.append(("ours + hooks + CUDA graph", True, None, True))
        if args.compile != "none":
            variants += [("ours compiled", False, args.compile, False),
                         ("ours compiled + hooks", True, args.compile, False)]
        for name, hooks, mode, graph in variants:
            if mode is not None and time.perf_counter() - began > args.budget * 0.6:
                group.append({"precision": dtype, "loop": name, "skipped": "time budget"})
                continue
            prepared = model(dtype, hooks, mode, graph)
            runs[name] = (lambda m=prepared: generate_fitting(m, seeds, sampler.sigmas(),
                                                              sampler, device))
            # the first call compiles, captures graphs and autotunes cuDNN: timed apart
            group.append({"precision": dtype, "loop": name,
                          "first_call_s": timed(runs[name], device)[0]})
        times: dict[str, list[float]] = {name: [] for name in runs}
        images: dict[str, torch.Tensor] = {}
        for _ in range(args.repeats):
            for name, run in runs.items():
                seconds, images[name] = timed(run, device)
                times[name].append(seconds)
        plain = statistics.median(times["plain"])
        for row in group:
            if row["loop"] in times:
                median = statistics.median(times[row["loop"]])
                row.update(images_per_s=args.batch / median, over_plain=plain / median,
                           runs_s=times[row["loop"]])
        # the same seeds through the same network: our images are the plain loop's
        group[1]["max_abs_diff_vs_plain"] = (images["ours"] - images["plain"]).abs().max().item()
        rows += group
    syncs = None
    if device.startswith("cuda"):
        ours = model("bf16", True, None, False)
        once = partial(generate_fitting, ours, seeds, sampler.sigmas(), sampler, device)
        once()  # cuDNN autotuning and lazy initialization may wait for the device: not counted
        syncs = host_syncs(once)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    result = {"device": name, "torch": torch.__version__, "network": layout, "skips": k,
              "parameters_M": sum(p.numel() for p in net.parameters()) / 1e6,
              "batch": args.batch, "nfe": 2 * args.steps - 1, "host_syncs_per_batch": syncs,
              "rows": rows, "wall_s": time.perf_counter() - began}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    label = "ADM ImageNet-64" if not args.tiny else "a tiny ADM (smoke run)"
    print(f"{name}, torch {torch.__version__}: {label} "
          f"({result['parameters_M']:.0f}M parameters, {k} skips), batch {args.batch}, "
          f"Heun {result['nfe']} NFE, median of {args.repeats}")
    print("| precision | loop | images/s | / plain |\n| --- | --- | ---: | ---: |")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['precision']} | {row['loop']} | skipped ({row['skipped']}) | |")
        else:
            print(f"| {row['precision']} | {row['loop']} | {row['images_per_s']:.1f} | "
                  f"{row['over_plain']:.3f} |")
    if syncs is not None:
        print(f"host synchronizations in one bf16 batch of our loop: {syncs}")
    print(f"wall time {result['wall_s']:.0f} s; JSON in {args.out}")


if __name__ == "__main__":
    main()
