"""Images per second of EDM's ADM ImageNet-64 network at its real size (random weights).

    python benchmarks/adm_throughput.py --batch 64 --steps 10 --repeats 3 --device cuda

Builds the 296M-parameter ADM layout (DhariwalUNet in EDMPrecond, 16 skips) from the EDM-format
test networks, samples with Heun at 2 * steps - 1 NFE with and without Skip-Tuning hooks (rho
from 0.78 at the bottom to 1.0 at the top, the paper's setting), interleaved, and prints the
throughputs and their ratio; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skipsearch.models.edm import EDMNetworkDenoiser
from skipsearch.samplers import edm_sigmas, generate
from skipsearch.schedule import linear_coefficients
from skipsearch.skips import skip_tuning
from tests.edm_format.writer import build_network

ADM_IMAGENET64 = {"img_resolution": 64, "img_channels": 3, "label_dim": 1000,
                  "model_type": "DhariwalUNet", "model_channels": 192,
                  "channel_mult": [1, 2, 3, 4], "num_blocks": 3, "attn_resolutions": [32, 16, 8]}


def sync(device: str) -> None:
    """Wait for queued GPU work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def images_per_second(denoiser, rhos, batch: int, steps: int, device: str) -> float:
    """Throughput of one batch of Heun sampling, with hooks at ``rhos`` or none."""
    sigmas = edm_sigmas(steps)
    sync(device)
    start = time.perf_counter()
    if rhos is None:
        generate(denoiser, range(batch), sigmas, "heun", device)
    else:
        with skip_tuning(denoiser, denoiser.skips, rhos):
            generate(denoiser, range(batch), sigmas, "heun", device)
    sync(device)
    return batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="Heun steps: NFE = 2 steps - 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/adm_throughput.json"))
    args = parser.parse_args()

    net = build_network("EDMPrecond", **ADM_IMAGENET64)
    denoiser = EDMNetworkDenoiser(net).eval().requires_grad_(False).to(args.device)
    rhos = linear_coefficients(1.0, 0.78, len(denoiser.skips))
    images_per_second(denoiser, rhos, min(args.batch, 4), 1, args.device)  # warm-up
    plain, hooked = [], []
    for _ in range(args.repeats):
        plain.append(images_per_second(denoiser, None, args.batch, args.steps, args.device))
        hooked.append(images_per_second(denoiser, rhos, args.batch, args.steps, args.device))
    ratio = statistics.median(h / p for h, p in zip(hooked, plain, strict=True))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    result = {"device": device, "torch": torch.__version__, "skips": len(denoiser.skips),
              "parameters_M": sum(p.numel() for p in net.parameters()) / 1e6,
              "batch": args.batch, "nfe": 2 * args.steps - 1, "images_per_s_plain": plain,
              "images_per_s_hooked": hooked, "hooked_over_plain_median": ratio}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{device}: ADM ImageNet-64 ({result['parameters_M']:.0f}M params, {len(rhos)} skips), "
          f"batch {args.batch}, {result['nfe']} NFE")
    print(f"images/s without hooks: {statistics.median(plain):.2f}, with hooks: "
          f"{statistics.median(hooked):.2f}, ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
