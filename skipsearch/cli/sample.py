"""``skipsearch sample``: images from a schedule file (or the skip config), grid, npz and FID."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ..config import SCHEDULE_SECTIONS, sampler_spec, schedule_from_config, validate
from ..evaluate import evaluate
from ..export import check_fits, load_schedule
from ..images import save_grid, to_uint8
from ..models import LoadedModel
from ..runtime import build_model, build_scorer, setup_device
from ..samplers import labels_from_seeds
from ..samplers.spec import SamplerSpec
from ..seed_range import SeedRange


def plan(cfg: DictConfig, model: LoadedModel):
    """Schedule, sampler and seeds: from the schedule file if given, else from the config."""
    n = cfg.sample.get("n")
    if cfg.get("schedule") is not None:
        exported = load_schedule(cfg.schedule, sections=SCHEDULE_SECTIONS["sample"])
        check_fits(exported, model)
        sampler = SamplerSpec.from_dict(exported.sampler, int(exported.sampler["steps"]))
        scored = SeedRange.from_dict(exported.score["seeds"])
        seeds = scored.with_count(int(n)) if n else scored
        name = Path(cfg.schedule).stem
        return exported.schedule, sampler, seeds.seeds, name, exported
    levels = [p.level for p in model.denoiser.skips]
    seeds = SeedRange(int(cfg.metric.seed_start), int(n or cfg.metric.n_samples))
    return schedule_from_config(cfg, levels), sampler_spec(cfg), seeds.seeds, "config", None


def run_sample(cfg: DictConfig) -> dict:
    """Write grid.png and samples.npz; print FID next to the exported FID, if any."""
    validate(cfg, "sample")
    device = setup_device(cfg)
    model = build_model(cfg, device)
    schedule, sampler, seeds, name, exported = plan(cfg, model)
    scorer = build_scorer(cfg, device, model) if cfg.sample.score else None
    infinity = bool(cfg.metric.get("fid_infinity")) and scorer is not None
    result = evaluate(model, schedule, sampler, seeds, int(cfg.batch_size), device, scorer,
                      keep_images=True, fid_infinity=infinity)
    out = Path(cfg.sample.dir) / name
    save_grid(result.images[: int(cfg.sample.grid)], out / "grid.png")
    labels = labels_from_seeds(seeds, model.denoiser.label_dim)
    np.savez_compressed(out / "samples.npz", images=to_uint8(result.images),
                        seeds=np.asarray(seeds),
                        labels=labels.argmax(1).numpy() if labels is not None else np.zeros(0),
                        coefficients=np.asarray(schedule.coefficients))
    line = f"{len(seeds)} images at {sampler.nfe} NFE -> {out}"
    if result.fid is not None:
        line += f"\nFID {result.fid:.10g}"
        if exported is not None and len(seeds) == exported.score["n_samples"]:
            line += f" (exported: {exported.score['fid']:.10g})"
    if result.fid_infinity is not None:
        line += f"\nFID-infinity {result.fid_infinity:.10g}"
    print(line)
    return {"fid": result.fid, "dir": out, "nfe": sampler.nfe}
