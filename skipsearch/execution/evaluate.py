"""Sample a seed range under a skip schedule and stream the batches into the metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

from ..metrics.fid_infinity import infinity_counts
from ..metrics.scorer import Scorer
from ..metrics.statistic import Accumulator
from ..models import LoadedModel
from ..models.denoiser import guided
from ..samplers.spec import SamplerSpec  # also importable from here, as before
from ..tuning.schedule import SkipSchedule
from ..tuning.skips import skip_tuning
from .generation import generate
from .progress import Progress

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """The scores of one schedule (primary first), its NFE and the first images.

    ``score`` is the scorer's primary metric (FID-infinity too, if asked); ``scores`` every
    metric of the pass; ``accumulators`` their per-block state when ``blocks`` were asked.
    """

    score: float | None
    nfe: int
    preview: torch.Tensor
    images: torch.Tensor | None = None
    score_infinity: float | None = None
    scores: dict[str, float] | None = None
    parts: dict[str, dict[str, float]] | None = None
    accumulators: dict[str, Accumulator] | None = None


def batch_ranges(n: int, batch_size: int, cuts: Sequence[int] = ()) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most ``batch_size`` covering ``n``, also split at ``cuts``."""
    edges = sorted({*range(0, n, batch_size), *(c for c in cuts if 0 < c < n), n})
    return list(pairwise(edges))


def sample_batches(model: LoadedModel, schedule: SkipSchedule, sampler: SamplerSpec,
                   seeds: Sequence[int], batch_size: int, device: torch.device | str,
                   desc: str = "images", cuts: Sequence[int] = (),
                   bar: Progress | None = None):
    """Yield (seeds, images) batch by batch, with the schedule's hooks on the denoiser.

    No batch straddles a position in ``cuts`` (the sample counts of the FID stages). ``bar``:
    a progress shared with other calls (kept open); else one of its own.
    """
    sigmas = sampler.sigmas()
    own = bar is None
    bar = Progress(len(seeds), desc) if bar is None else bar
    # Registered hooks only load the coefficients; otherwise hooks are added for this loop.
    tuned = (model.hooks.tuning(schedule) if model.hooks is not None
             else skip_tuning(model.denoiser, model.denoiser.skips, schedule))
    with tuned, guided(model.denoiser, schedule.guidance_scale):
        for start, stop in batch_ranges(len(seeds), batch_size, cuts):
            chunk = seeds[start:stop]
            images = generate_fitting(model, chunk, sigmas, sampler, device)
            bar.update(len(chunk))
            yield chunk, images
    if own:
        bar.close()


def prompts_of(model: LoadedModel, scorer: Scorer | None) -> Callable | None:
    """Seeds -> their prompts, when a metric of the scorer's pass needs them; else None."""
    if scorer is None or not scorer.needs_prompts():
        return None
    return getattr(model.denoiser, "prompts_for", None)


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
             scorer: Scorer | None = None, preview: int = 64,
             keep_images: bool = False, stages: Sequence[int] = (),
             on_stage: Callable[[int, float], None] | None = None,
             fid_infinity: bool = False, desc: str = "images", blocks: int = 0,
             metrics: Sequence[str] | None = None) -> Evaluation:
    """Generate images for ``seeds`` and score them; images are not kept unless asked.

    ``metrics``: the scorer's metrics to score (its primary alone if None). After the first
    ``k`` images for each ``k`` in ``stages`` (and after all of them), ``on_stage(k, score)``
    is called with the primary score; it may raise to stop early (a pruned trial). With
    ``blocks`` each metric's per-block state comes back too (``Evaluation.accumulators``).
    """
    if scorer is not None:
        scorer.reset(checkpoints=infinity_counts(len(seeds)) if fid_infinity else (),
                     blocks=blocks, total=len(seeds), names=metrics)
    prompts_for = prompts_of(model, scorer)
    stops = {*(k for k in stages if 0 < k < len(seeds))}
    first, kept, done = [], [], 0
    for chunk, images in sample_batches(model, schedule, sampler, seeds, batch_size, device,
                                        desc, cuts=sorted(stops)):
        done += len(chunk)
        if scorer is not None:
            scorer.update(images, prompts_for(chunk) if prompts_for else None)
            if on_stage is not None and done in stops:
                on_stage(done, scorer.compute())
        if sum(len(f) for f in first) < preview:
            first.append(images[:preview].cpu())
        if keep_images:
            kept.append(images.cpu())
    if scorer is None:
        return Evaluation(None, sampler.nfe, torch.cat(first)[:preview],
                          torch.cat(kept) if keep_images else None)
    score = scorer.compute()
    if on_stage is not None:
        on_stage(done, score)
    infinity = scorer.compute_infinity().value if fid_infinity else None
    return Evaluation(score, sampler.nfe, torch.cat(first)[:preview],
                      torch.cat(kept) if keep_images else None, infinity, scorer.values(),
                      scorer.parts(), dict(scorer.accumulators) if blocks else None)
