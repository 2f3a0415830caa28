"""``skipsearch sample``: images from a schedule file (or the skip config), grid, npz and FID."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from ..configuration.build import Settings, build
from ..execution.evaluate import evaluate
from ..execution.images import save_grid, to_uint8
from ..execution.runtime import build_model, build_scorer, fit_sampler, fit_settings, setup_device
from ..execution.seed_range import SeedRange
from ..metrics.registry import label
from ..models import LoadedModel
from ..samplers import labels_from_seeds
from ..samplers.spec import SamplerSpec
from ..tuning.schedule_file import check_fits


def plan(settings: Settings, model: LoadedModel):
    """Schedule, sampler and seeds: from the schedule file if given, else from the config."""
    n = settings.options.n
    exported = settings.schedule_file
    if exported is not None:
        check_fits(exported, model)
        sampler = fit_sampler(SamplerSpec.from_dict(exported.sampler,
                                                    int(exported.sampler["steps"])), model)
        scored = SeedRange.from_dict(exported.score["seeds"])
        seeds = scored.with_count(n) if n else scored
        return exported.schedule, sampler, seeds.seeds, exported.path.stem, exported
    settings = fit_settings(settings, model)  # the sampler inside the network's levels
    levels = [p.level for p in model.denoiser.skips]
    search = settings.metric.search
    seeds = search.with_count(n) if n else search
    return settings.fixed_schedule(levels), settings.sampler, seeds.seeds, "config", None


def run_sample(cfg: DictConfig, settings: Settings | None = None) -> dict:
    """Write grid.png and samples.npz; print the score next to the exported one, if any."""
    settings = settings or build(cfg, "sample")
    options = settings.options
    device = setup_device(settings)
    model = build_model(settings, device)
    schedule, sampler, seeds, name, exported = plan(settings, model)
    scorer = build_scorer(settings, device, model) if options.score else None
    infinity = settings.metric.fid_infinity and scorer is not None
    result = evaluate(model, schedule, sampler, seeds, settings.execution.batch_size, device,
                      scorer, keep_images=True, fid_infinity=infinity,
                      desc=f"sample {name} ({sampler.nfe} NFE)")
    out = options.dir / name
    save_grid(result.images[: options.grid], out / "grid.png")
    labels = labels_from_seeds(seeds, model.denoiser.label_dim)
    np.savez_compressed(out / "samples.npz", images=to_uint8(result.images),
                        seeds=np.asarray(seeds),
                        labels=labels.argmax(1).numpy() if labels is not None else np.zeros(0),
                        coefficients=np.asarray(schedule.coefficients))
    line = f"{len(seeds)} images at {sampler.nfe} NFE -> {out}"
    if result.score is not None:
        line += f"\n{score_line(settings.metric.name, result.score, len(seeds), exported)}"
    if result.score_infinity is not None:
        line += f"\nFID-infinity {result.score_infinity:.10g}"
    print(line)
    return {"score": result.score, "metric": settings.metric.name, "dir": out,
            "nfe": sampler.nfe}


def score_line(metric: str, score: float, count: int, exported) -> str:
    """``metric score``, next to the exported score when it was measured the same way."""
    line = f"{label(metric)} {score:.10g}"
    if exported is None:
        return line
    theirs = f"{exported.value:.10g}"
    if exported.metric != metric:
        return line + (f" (the export's score is {label(exported.metric)} {theirs}: another "
                       "metric, not compared)")
    if count == exported.score["n_samples"]:
        return line + f" (exported: {theirs})"
    # a score on other images is biased differently by their count: say so, do not compare
    n = exported.score["n_samples"]
    return line + (f" on {count} images; the exported {theirs} is on {n} (the score depends "
                   f"on the image count: sample.n={n} compares)")
