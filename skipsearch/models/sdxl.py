"""Stable Diffusion XL (base) as a Denoiser: two text encoders, size conditioning, its VAE.

The UNet of SDXL reads three things besides the latents: the context (``encoder_hidden_states``,
the penultimate hidden states of both CLIP text encoders side by side, 768 + 1280 = 2048
features), the pooled, projected embedding of the second encoder (``text_embeds``) and six size
numbers (``time_ids``: original height and width, crop top and left, target height and width),
the last two through ``added_cond_kwargs``. As diffusers' ``StableDiffusionXLPipeline``:

* guidance's unconditional pass is all zeros (context and pooled embedding) when the negative
  prompt is empty and the pipeline's ``model_index.json`` sets ``force_zeros_for_empty_prompt``
  (true when the file or the key is absent); otherwise it is the negative prompt's encoding;
* both passes share the time ids;
* the VAE decodes ``latents / scaling_factor`` (its own factor, 0.13025 for SDXL), with
  ``latents_mean``/``latents_std`` when its config has them, in float32 when it sets
  ``force_upcast``.

A prompt's conditioning is one tensor, so that the samplers, compiled calls and CUDA graphs take
it as they take Stable Diffusion's: the context's ``length`` rows, then the pooled embedding laid
out in rows of the same width, zero-padded (``pack``). ``unet_condition`` splits a batch of them
back into the UNet's keyword arguments. Everything comes from a local pipeline folder.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..configuration.errors import ConfigError, check
from ..configuration.keys import is_number
from .diffusers_unet import (
    BETA_SCHEDULES,
    SCHEDULER_DEFAULTS,
    DiffusersConditionDenoiser,
    load_diffusers_condition_unet,
)
from .prompts import read_prompts
from .text_to_image import TextToImageDenoiser

# The pipeline's folders (besides scheduler/, read when model.scheduler is null).
FOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
TIME_IDS = 6  # original (h, w), crop (top, left), target (h, w)


# --- conditioning layout -----------------------------------------------------------------------


def pack(states: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """Context (B, length, dim) and pooled (B, P) as one (B, length + ceil(P / dim), dim)."""
    batch, width = states.shape[0], states.shape[-1]
    rows = math.ceil(pooled.shape[-1] / width)
    padded = torch.cat([pooled, pooled.new_zeros(batch, rows * width - pooled.shape[-1])], 1)
    return torch.cat([states, padded.reshape(batch, rows, width)], dim=1)


def unpack(condition: torch.Tensor, length: int, pooled_dim: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The context (B, length, dim) and pooled embedding (B, P) of packed conditioning."""
    states = condition[:, :length].contiguous()
    pooled = condition[:, length:].flatten(1)[:, :pooled_dim].contiguous()
    return states, pooled


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


# --- the denoiser ------------------------------------------------------------------------------


class SDXLDenoiser(TextToImageDenoiser):
    """An SDXL base UNet with both text encoders, tokenizers and its VAE.

    ``guidance_scale``, ``negative_prompt`` and ``force_zeros_for_empty_prompt`` are plain
    attributes read at each call (a cached negative encoding stays valid: the cache is keyed by
    prompt). ``target_size`` is the image side in pixels: the latents' side is
    ``target_size / 2 ** (len(vae.config.block_out_channels) - 1)``.
    """

    def __init__(self, inner: DiffusersConditionDenoiser, text_encoder: nn.Module,
                 text_encoder_2: nn.Module, tokenizer: Any, tokenizer_2: Any, vae: nn.Module,
                 prompts: Sequence[str] = (), guidance_scale: float = 1.0,
                 negative_prompt: str = "", target_size: int | None = None,
                 original_size: int | Sequence[int] | None = None,
                 crops_coords_top_left: Sequence[int] = (0, 0),
                 force_zeros_for_empty_prompt: bool = True) -> None:
        super().__init__(inner, text_encoder, tokenizer, vae, prompts, guidance_scale,
                         negative_prompt)
        self.text_encoder_2, self.tokenizer_2 = text_encoder_2, tokenizer_2
        self.force_zeros_for_empty_prompt = bool(force_zeros_for_empty_prompt)
        self.length = int(tokenizer.model_max_length)
        self.pooled_dim = int(text_encoder_2.config.projection_dim)
        check_components(inner.unet, text_encoder, text_encoder_2, tokenizer, tokenizer_2)
        factor = vae_scale_factor(vae)
        if target_size is None:  # the pipeline's default: the UNet's sample size in pixels
            target_size = inner.img_resolution * factor
        check(target_size % factor == 0, "model.target_size", target_size,
              f"must be a multiple of {factor}, the VAE's downsampling factor")
        self.target_size = int(target_size)
        self.img_resolution = self.target_size // factor
        self.skips = [replace(p, resolution=self.img_resolution >> p.level) for p in self.skips]
        self.register_buffer("time_ids", time_ids(original_size, crops_coords_top_left,
                                                  self.target_size), persistent=False)

    def encoders(self) -> Iterator[tuple[Any, nn.Module]]:
        """(tokenizer, text encoder) of both encoders, in the order of the context's features."""
        yield self.tokenizer, self.text_encoder
        yield self.tokenizer_2, self.text_encoder_2

    def encode(self, prompt: str) -> torch.Tensor:
        """Both encoders' penultimate states side by side and the pooled embedding, packed."""
        states, output = [], None
        for tokenizer, encoder in self.encoders():
            ids = tokenizer(prompt, padding="max_length", truncation=True,
                            max_length=self.length, return_tensors="pt").input_ids
            output = encoder(ids.to(_device(encoder)), output_hidden_states=True)
            states.append(output.hidden_states[-2])
        dtype = self.text_encoder_2.dtype
        return pack(torch.cat(states, dim=-1).to(dtype), output.text_embeds.to(dtype))

    def unconditional(self) -> torch.Tensor:
        """Zeros for an empty negative prompt under force_zeros_for_empty_prompt, else its code."""
        if not self.negative_prompt and self.force_zeros_for_empty_prompt:
            return torch.zeros_like(self.embed(""))
        return self.embed(self.negative_prompt)

    def unet_condition(self, condition: torch.Tensor | None) -> Mapping[str, Any] | None:
        """The UNet's context and ``added_cond_kwargs`` (pooled embedding, time ids) of a batch."""
        if condition is None:
            return None
        states, pooled = unpack(condition, self.length, self.pooled_dim)
        ids = self.time_ids.to(condition.device).expand(condition.shape[0], -1)
        return {"encoder_hidden_states": states,
                "added_cond_kwargs": {"text_embeds": pooled, "time_ids": ids}}

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents through the VAE to RGB in [-1, 1]: its own scaling, float32 if force_upcast."""
        config = self.vae.config
        upcast = bool(getattr(config, "force_upcast", False))
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        with _float32(self.vae, upcast):
            if mean is not None and std is not None:
                shape = (1, -1, 1, 1)
                mean = torch.tensor(mean, device=x.device, dtype=x.dtype).reshape(shape)
                std = torch.tensor(std, device=x.device, dtype=x.dtype).reshape(shape)
                x = x * std / config.scaling_factor + mean
            else:
                x = x / config.scaling_factor
            images = self.vae.decode(x.to(self.vae.dtype)).sample
        return images.to(torch.float32)


@contextlib.contextmanager
def _float32(vae: nn.Module, upcast: bool) -> Iterator[None]:
    """With ``upcast``: autocast off and a float16 VAE in float32 inside (as the pipeline)."""
    if not upcast:
        yield
        return
    half = vae.dtype == torch.float16
    if half:
        vae.to(torch.float32)
    try:
        with torch.autocast(_device(vae).type, enabled=False):
            yield
    finally:
        if half:
            vae.to(torch.float16)


def vae_scale_factor(vae: nn.Module) -> int:
    """Pixels per latent along a side: 2 per VAE down block after the first (8 for SDXL)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """(h, w) of one side or of a pair."""
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def time_ids(original_size: int | Sequence[int] | None, crops_coords_top_left: Sequence[int],
             target_size: int) -> torch.Tensor:
    """SDXL's size conditioning (1, 6), float32: original (h, w), crop (top, left), target."""
    target = _pair(target_size)
    original = target if original_size is None else _pair(original_size)
    crop = _pair(crops_coords_top_left)
    return torch.tensor([[*original, *crop, *target]], dtype=torch.float32)


def check_components(unet: nn.Module, text_encoder: nn.Module, text_encoder_2: nn.Module,
                     tokenizer: Any, tokenizer_2: Any) -> None:
    """The pieces fit together as an SDXL base pipeline; ValueError saying why if not."""
    config = unet.config

    def fits(ok: bool, why: str) -> None:
        if not ok:
            raise ValueError(why)

    fits(getattr(config, "addition_embed_type", None) == "text_time",
         f"its UNet's addition_embed_type is {getattr(config, 'addition_embed_type', None)!r}, "
         "not SDXL's 'text_time'; for Stable Diffusion 1.x/2.x use model=stable_diffusion")
    width = int(text_encoder.config.hidden_size) + int(text_encoder_2.config.hidden_size)
    fits(int(config.cross_attention_dim) == width,
         f"the UNet's cross_attention_dim {config.cross_attention_dim} is not the sum of the "
         f"text encoders' hidden sizes ({width}); give an SDXL base pipeline folder")
    given = int(config.addition_time_embed_dim) * TIME_IDS + int(
        text_encoder_2.config.projection_dim)
    expected = int(unet.add_embedding.linear_1.in_features)
    fits(given == expected,
         f"the UNet's added embedding takes {expected} features, but {TIME_IDS} time ids and "
         f"text_encoder_2's projection give {given}; give an SDXL base pipeline folder "
         "(the refiner is not supported)")
    fits(int(tokenizer.model_max_length) == int(tokenizer_2.model_max_length),
         f"tokenizer/ and tokenizer_2/ pad to {tokenizer.model_max_length} and "
         f"{tokenizer_2.model_max_length} tokens; they must agree")


# --- settings and loading ----------------------------------------------------------------------


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _size(value: Any, minimum: int) -> bool:
    """One int, or a [height, width] pair of ints, each >= minimum."""
    return _is_int(value, minimum) or (isinstance(value, (list, tuple)) and len(value) == 2
                                       and all(_is_int(v, minimum) for v in value))


def sdxl_settings(cfg: DictConfig) -> dict[str, Any]:
    """The checked keyword arguments of ``load_sdxl`` from the ``model`` group (torch-free).

    Each bad value is one ConfigError naming the key; keys left out take the loader's defaults.
    """
    get = cfg.get
    scale = get("guidance_scale", 1.0)
    check(is_number(scale) and math.isfinite(scale) and scale >= 1.0, "model.guidance_scale",
          scale, "must be a finite number >= 1 (1: no guidance; 5.0 is SDXL's default)")
    negative = get("negative_prompt") or ""
    check(isinstance(negative, str), "model.negative_prompt", negative,
          'must be a string ("": zeros when force_zeros_for_empty_prompt)')
    ptype = get("prediction_type")
    check(ptype in (None, "epsilon", "v_prediction"), "model.prediction_type", ptype,
          "choose epsilon (SDXL base) or v_prediction; null reads the scheduler's")
    target = get("target_size")
    check(target is None or _is_int(target, 1), "model.target_size", target,
          "must be the image side in pixels, an integer >= 1 (1024 for SDXL), or null")
    original = _plain(get("original_size"))
    check(original is None or _size(original, 1), "model.original_size", original,
          "must be null (the target size), a side in pixels or [height, width]")
    crop = _plain(get("crops_coords_top_left", [0, 0]))
    check(isinstance(crop, list) and len(crop) == 2 and all(_is_int(v, 0) for v in crop),
          "model.crops_coords_top_left", crop, "must be [top, left], two integers >= 0")
    scheduler = _plain(get("scheduler"))
    check(scheduler is None or isinstance(scheduler, dict), "model.scheduler", scheduler,
          "must be the DDPM schedule's keys, or null to read the pipeline's scheduler/")
    if scheduler is not None:
        _check_scheduler(scheduler)
    prompts = get("prompts")
    return {"scheduler_config": scheduler, "prediction_type": ptype,
            "prompts": read_prompts(prompts) if prompts else (),
            "guidance_scale": float(scale), "negative_prompt": negative,
            "target_size": target, "original_size": original, "crops_coords_top_left": crop}


def _check_scheduler(scheduler: dict) -> None:
    """The DDPM schedule's keys that are given: counts, betas and the schedule's name."""
    full = {**SCHEDULER_DEFAULTS, **{k: v for k, v in scheduler.items() if v is not None}}
    steps = full["num_train_timesteps"]
    check(_is_int(steps, 2), "model.scheduler.num_train_timesteps", steps,
          "must be an integer >= 2 (1000 for SDXL)")
    for key in ("beta_start", "beta_end"):
        check(is_number(full[key]) and 0 < full[key] < 1, f"model.scheduler.{key}", full[key],
              "must be a number in (0, 1) (SDXL: 0.00085 to 0.012)")
    check(full["beta_start"] < full["beta_end"], "model.scheduler.beta_end", full["beta_end"],
          f"must be above beta_start ({full['beta_start']})")
    check(full["beta_schedule"] in BETA_SCHEDULES, "model.scheduler.beta_schedule",
          full["beta_schedule"],
          f"choose one of {', '.join(BETA_SCHEDULES)} (SDXL: scaled_linear)")


def force_zeros_for_empty_prompt(path: str | Path) -> bool:
    """The pipeline's ``force_zeros_for_empty_prompt`` (model_index.json; true when absent)."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return True
    try:
        value = json.loads(index.read_text()).get("force_zeros_for_empty_prompt", True)
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise ConfigError("model.path", str(path), "its model_index.json is not a JSON object; "
                          "give a pipeline folder saved by diffusers") from None
    check(isinstance(value, bool), "model.path", str(path),
          f"model_index.json's force_zeros_for_empty_prompt is {value!r}; it must be a boolean")
    return value


def load_sdxl(path: str | Path, scheduler_config: Mapping | str | Path | None = None,
              prediction_type: str | None = None, prompts: Sequence[str] = (),
              guidance_scale: float = 1.0, negative_prompt: str = "",
              target_size: int | None = None, original_size: int | Sequence[int] | None = None,
              crops_coords_top_left: Sequence[int] = (0, 0)) -> SDXLDenoiser:
    """A local SDXL base pipeline folder as an SDXLDenoiser (nothing is downloaded).

    ``scheduler_config`` None reads the folder's ``scheduler/``; ``target_size`` None is the
    UNet's sample size in pixels (1024 for SDXL base).
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    path = Path(path)
    missing = [name for name in FOLDERS if not (path / name).is_dir()]
    check(not missing, "model.path", str(path), f"no {', '.join(n + '/' for n in missing)} "
          "folder; give a local SDXL base pipeline folder (unet/, vae/, text_encoder/, "
          "text_encoder_2/, tokenizer/, tokenizer_2/)")
    scheduler = path / "scheduler" if scheduler_config is None else scheduler_config
    inner = load_diffusers_condition_unet(path, scheduler, prediction_type, "unet")
    parts = {"vae": AutoencoderKL, "text_encoder": CLIPTextModel,
             "text_encoder_2": CLIPTextModelWithProjection, "tokenizer": CLIPTokenizer,
             "tokenizer_2": CLIPTokenizer}
    loaded = {}
    for name, part in parts.items():
        try:
            loaded[name] = part.from_pretrained(str(path), subfolder=name, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ConfigError("model.path", str(path), f"cannot load its {name}/ as a "
                              f"{part.__name__} ({err})") from None
    modules = {k: v.eval().requires_grad_(False) for k, v in loaded.items()
               if isinstance(v, nn.Module)}
    try:
        return SDXLDenoiser(inner, modules["text_encoder"], modules["text_encoder_2"],
                            loaded["tokenizer"], loaded["tokenizer_2"], modules["vae"], prompts,
                            guidance_scale, negative_prompt, target_size, original_size,
                            crops_coords_top_left, force_zeros_for_empty_prompt(path))
    except ValueError as err:  # check_components: the parts do not make an SDXL base pipeline
        raise ConfigError("model.path", str(path), str(err)) from None
