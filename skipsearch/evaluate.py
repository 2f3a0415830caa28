"""Sample a seed range under a skip schedule and stream the batches into FID."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import torch
from tqdm.auto import tqdm

from .metrics.blocks import BlockSums
from .metrics.fid import FIDScorer
from .metrics.fid_infinity import infinity_counts
from .models import LoadedModel
from .samplers import edm_sigmas, generate, nfe_of, sigmas_from_list
from .schedule import SkipSchedule
from .skips import skip_tuning

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler, its options and its discretization (EDM's, or a given list of sigmas)."""

    name: str
    steps: int
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    options: Mapping[str, float] = field(default_factory=dict)
    sigma_list: tuple[float, ...] | None = None

    @property
    def nfe(self) -> int:
        """Exact network evaluations per image."""
        return nfe_of(self.name, self.steps)

    def sigmas(self) -> torch.Tensor:
        """The N + 1 noise levels, float64."""
        if self.sigma_list is not None:
            return sigmas_from_list(self.sigma_list)
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)

    def to_dict(self) -> dict:
        """Everything but the step count, YAML-friendly (the study records this)."""
        return {"name": self.name, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "rho": self.rho, "options": dict(self.options),
                "sigmas": list(self.sigma_list) if self.sigma_list is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping, steps: int) -> SamplerSpec:
        """Inverse of ``to_dict`` with the step count."""
        sigmas = data.get("sigmas")
        return cls(str(data["name"]), int(steps), float(data["sigma_min"]),
                   float(data["sigma_max"]), float(data["rho"]),
                   {k: float(v) for k, v in dict(data.get("options") or {}).items()},
                   tuple(float(v) for v in sigmas) if sigmas is not None else None)


@dataclass
class Evaluation:
    """FID of one schedule (and FID-infinity if asked), its NFE and the first images."""

    fid: float | None
    nfe: int
    preview: torch.Tensor
    images: torch.Tensor | None = None
    fid_infinity: float | None = None
    blocks: BlockSums | None = None


def batch_ranges(n: int, batch_size: int, cuts: Sequence[int] = ()) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most ``batch_size`` covering ``n``, also split at ``cuts``."""
    edges = sorted({*range(0, n, batch_size), *(c for c in cuts if 0 < c < n), n})
    return list(pairwise(edges))


def sample_batches(model: LoadedModel, schedule: SkipSchedule, sampler: SamplerSpec,
                   seeds: Sequence[int], batch_size: int, device: torch.device | str,
                   desc: str = "images", cuts: Sequence[int] = ()):
    """Yield (seeds, images) batch by batch, with the schedule's hooks on the denoiser.

    No batch straddles a position in ``cuts`` (the sample counts of the FID stages).
    """
    sigmas = sampler.sigmas()
    bar = tqdm(total=len(seeds), desc=desc, unit="img", leave=False, disable=None)
    # Registered hooks only load the coefficients; otherwise hooks are added for this loop.
    tuned = (model.hooks.tuning(schedule) if model.hooks is not None
             else skip_tuning(model.denoiser, model.denoiser.skips, schedule))
    with tuned:
        for start, stop in batch_ranges(len(seeds), batch_size, cuts):
            chunk = seeds[start:stop]
            images = generate_fitting(model, chunk, sigmas, sampler, device)
            bar.update(len(chunk))
            yield chunk, images
    bar.close()


# The largest batch that fitted, per (model hash, device, network precision), once an
# out-of-memory error was seen.
FITTING_BATCH: dict[tuple[str, str, str], int] = {}


def generate_fitting(model: LoadedModel, seeds: Sequence[int], sigmas: torch.Tensor,
                     sampler: SamplerSpec, device: torch.device | str) -> torch.Tensor:
    """``generate`` in sub-batches that fit: out of memory halves the batch and retries it.

    Images do not depend on the batch they are drawn in, so the result is the same.
    """
    key = (model.sha256, str(device), model.precision.network)
    parts, start = [], 0
    while start < len(seeds):
        size = min(len(seeds) - start, FITTING_BATCH.get(key, len(seeds)))
        part = seeds[start:start + size]
        try:
            parts.append(generate(model.denoiser, part, sigmas, sampler.name, device,
                                  sampler.options, model.precision, model.network))
        except torch.OutOfMemoryError:
            if size == 1:
                raise
            FITTING_BATCH[key] = size // 2
            log.warning("out of memory with a batch of %d images on %s; halving it to %d",
                        size, device, size // 2)
            if str(device).startswith("cuda"):
                torch.cuda.empty_cache()
            continue
        start += size
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def evaluate(model: LoadedModel, schedule: SkipSchedule, sampler: SamplerSpec,
             seeds: Sequence[int], batch_size: int, device: torch.device | str,
             scorer: FIDScorer | None = None, preview: int = 64,
             keep_images: bool = False, stages: Sequence[int] = (),
             on_stage: Callable[[int, float], None] | None = None,
             fid_infinity: bool = False, desc: str = "images", blocks: int = 0) -> Evaluation:
    """Generate images for ``seeds`` and score them; images are not kept unless asked.

    After the first ``k`` images for each ``k`` in ``stages`` (and after all of them),
    ``on_stage(k, fid)`` is called; it may raise to stop early (a pruned trial). With
    ``blocks`` the feature sums per block of seeds come back too (``Evaluation.blocks``).
    """
    if scorer is not None:
        scorer.reset(checkpoints=infinity_counts(len(seeds)) if fid_infinity else (),
                     blocks=blocks, total=len(seeds))
    stops = {*(k for k in stages if 0 < k < len(seeds))}
    first, kept, done = [], [], 0
    for chunk, images in sample_batches(model, schedule, sampler, seeds, batch_size, device,
                                        desc, cuts=sorted(stops)):
        done += len(chunk)
        if scorer is not None:
            scorer.update(images)
            if on_stage is not None and done in stops:
                on_stage(done, scorer.compute())
        if sum(len(f) for f in first) < preview:
            first.append(images[:preview].cpu())
        if keep_images:
            kept.append(images.cpu())
    fid = scorer.compute() if scorer is not None else None
    if fid is not None and on_stage is not None:
        on_stage(done, fid)
    infinity = scorer.compute_infinity().value if fid is not None and fid_infinity else None
    return Evaluation(fid, sampler.nfe, torch.cat(first)[:preview],
                      torch.cat(kept) if keep_images else None, infinity,
                      scorer.blocks if scorer is not None and blocks else None)
