"""Typed checks of the ``model.*`` settings of the adm, ldm and uvit kinds, before any work."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import check
from ..configuration.keys import is_number


def _number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _int(minimum: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
            f"must be an integer >= {minimum}")


POSITIVE = (lambda v: _number(v) and v > 0, "must be a finite number > 0")
NUMBER = (_number, "must be a finite number")
BOOL = (lambda v: isinstance(v, bool), "must be true or false")
HEAD_CHANNELS = (lambda v: v == -1 or (isinstance(v, int) and v >= 1),
                 "must be -1 (use num_heads) or an integer >= 1")
MULTS = (lambda v: isinstance(v, list) and len(v) > 0 and all(_number(m) and m > 0 for m in v),
         "must be a non-empty list of positive numbers, e.g. [1,2,3,4]")
SIZES = (lambda v: isinstance(v, list) and all(isinstance(r, int) and r >= 1 for r in v),
         "must be a list of image sizes, e.g. [32,16,8]")
OPTIONAL_CLASS = (lambda v: v is None or (isinstance(v, int) and v >= 0),
                  "must be null or a class index >= 0")
LAYOUT = {"image_size": _int(1), "num_res_blocks": _int(1), "channel_mult": MULTS,
          "attention_resolutions": SIZES, "num_heads": _int(1),
          "num_head_channels": HEAD_CHANNELS}
GUIDANCE = {"num_classes": _int(0), "null_class": OPTIONAL_CLASS, "guidance_scale": NUMBER}
SPECS = {
    "adm": {**LAYOUT, "use_new_attention_order": BOOL, "resblock_updown": BOOL,
            "noise_schedule": (lambda v: v in ("linear", "cosine"), "choose linear or cosine"),
            "diffusion_steps": _int(2)},
    "ldm": {**LAYOUT, **GUIDANCE, "transformer_depth": _int(1), "latent_scale": POSITIVE,
            "use_ema": BOOL,
            "linear_start": POSITIVE, "linear_end": POSITIVE, "timesteps": _int(2)},
    "uvit": {**GUIDANCE, "num_heads": _int(1), "latent_scale": POSITIVE,
             "schedule": (lambda v: v in ("continuous", "discrete"),
                          "choose continuous (pixel models) or discrete (latent models)")},
}


def check_model_settings(cfg: DictConfig) -> None:
    """ConfigError naming the first ``model.*`` setting of this kind with a bad value."""
    for name, (ok, fix) in SPECS.get(str(cfg.model.kind), {}).items():
        if name not in cfg.model:
            continue  # a setting left out keeps the loader's default
        value = OmegaConf.select(cfg, f"model.{name}", throw_on_missing=False)
        value = OmegaConf.to_object(value) if OmegaConf.is_config(value) else value
        check(ok(value), f"model.{name}", value, fix)
