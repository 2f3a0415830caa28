"""FreeU (Si et al., CVPR 2024) as functions a decoder block's forward pre-hook can call.

FreeU re-weights what enters the two lowest-resolution decoder stages: the backbone factor
``b`` multiplies the first half of the backbone feature channels ``h``, the skip factor ``s``
multiplies the lowest frequencies of the skip features (a centred square of the shifted 2-D
spectrum). Stage 0 uses ``(b1, s1)``, stage 1 ``(b2, s2)``; later stages are left alone.

The functions work on the block input ``concat([h, skip])`` that the Skip-Tuning hooks see
(see ``skips.py``), and reproduce diffusers' ``enable_freeu`` value for value:

- the FFT always runs in float32 (diffusers casts every other dtype, float64 included, to
  float32 and the result back), and the scale is applied as diffusers' float mask does;
- ``b`` is applied as ``h[:, :half] * b`` with ``half = h_channels // 2``;
- diffusers applies FreeU to every resnet of ``up_blocks[0]`` and ``up_blocks[1]`` (only for
  ``UpBlock2D`` and ``CrossAttnUpBlock2D``), which ``freeu_stages`` selects from the skip points.

Two differences by design: the result is computed out of place (diffusers writes the scaled
channels into ``h`` in place), and a factor of exactly 0 is applied (diffusers treats FreeU as
off unless all four factors are truthy, so ``s = 0`` silently disables it there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from .schedule import FREEU_KEYS, freeu_problem
from .skips import SkipPoint

FREEU_THRESHOLD = 1  # half-width of the low-frequency square, as diffusers uses
N_STAGES = 2  # FreeU acts on the two lowest-resolution decoder stages


@dataclass(frozen=True)
class FreeU:
    """FreeU's factors: backbone b1, b2 (> 0) and skip s1, s2 (>= 0) of decoder stages 0, 1."""

    b1: float
    b2: float
    s1: float
    s2: float

    def __post_init__(self) -> None:
        problem = freeu_problem(asdict(self))
        if problem is not None:
            raise ValueError(problem)
        for key in FREEU_KEYS:
            object.__setattr__(self, key, float(getattr(self, key)))

    @classmethod
    def identity(cls) -> FreeU:
        """All factors 1.0: FreeU that changes nothing (up to FFT rounding of the skips)."""
        return cls(1.0, 1.0, 1.0, 1.0)

    @property
    def is_identity(self) -> bool:
        """True when every factor is exactly 1.0."""
        return all(getattr(self, key) == 1.0 for key in FREEU_KEYS)

    def stage(self, stage: int) -> tuple[float, float]:
        """The factors ``(b, s)`` of decoder stage 0 or 1."""
        if stage not in range(N_STAGES):
            raise ValueError(f"FreeU has stages 0 and 1, not {stage!r}")
        return (self.b1, self.s1) if stage == 0 else (self.b2, self.s2)

    def to_dict(self) -> dict[str, float]:
        """``{"b1": ..., "b2": ..., "s1": ..., "s2": ...}`` (the form SkipSchedule.freeu holds)."""
        return {key: getattr(self, key) for key in FREEU_KEYS}

    @classmethod
    def from_dict(cls, factors: Mapping[str, float]) -> FreeU:
        """FreeU from a mapping of exactly b1, b2, s1, s2; ValueError otherwise."""
        problem = freeu_problem(factors)
        if problem is not None:
            raise ValueError(problem)
        return cls(**{key: factors[key] for key in FREEU_KEYS})


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """Scale the centred low frequencies of (B, C, H, W) features by ``scale``, as diffusers.

    The 2-D spectrum over (H, W), shifted so the zero frequency sits at ``(H // 2, W // 2)``,
    has the rows and columns ``[H // 2 - threshold, H // 2 + threshold)`` (likewise for W)
    multiplied by ``scale``; the real part of its inverse is returned in ``x``'s dtype. The
    window is not symmetric about zero (it holds frequency -threshold but not +threshold), and
    a negative start wraps as a Python slice does (reached only when threshold > size // 2).
    The transform runs in float32 whatever ``x``'s dtype (diffusers upcasts float16 and bfloat16
    for stability, casts float64 down, and needs float32 for non-power-of-2 sizes). Only the
    window is multiplied (diffusers multiplies the rest by a mask of ones, which is exact), at
    the precision of diffusers' mask: ``scale`` is rounded to the default dtype (float32).
    """
    if x.ndim != 4:
        raise ValueError(f"fourier_filter takes (B, C, H, W) features, got shape {tuple(x.shape)}")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ValueError(f"threshold is {threshold!r}; it must be an integer >= 0")
    freq = torch.fft.fftshift(torch.fft.fftn(x.to(torch.float32), dim=(-2, -1)), dim=(-2, -1))
    # diffusers multiplies by a real mask of the default dtype: complex64 stays complex64 for
    # float32 and becomes complex128 (scale kept in float64) when the default is float64.
    freq = freq.to(torch.promote_types(freq.dtype, torch.get_default_dtype()))
    rows, cols = x.shape[-2] // 2, x.shape[-1] // 2
    window = (..., slice(rows - threshold, rows + threshold),
              slice(cols - threshold, cols + threshold))
    freq[window] *= scale  # a Python float: rounded to the spectrum's precision, as the mask
    out = torch.fft.ifftn(torch.fft.ifftshift(freq, dim=(-2, -1)), dim=(-2, -1)).real
    return out.to(x.dtype)


def _check_spatial(point: SkipPoint) -> None:
    """ValueError unless ``point`` joins (B, C, H, W) features along channels (dim 1)."""
    if point.feature_dim % 4 != 1:
        raise ValueError(
            f"{point.module_name} joins its features along dim {point.feature_dim}: token "
            "features (U-ViT) have no spatial grid, so FreeU's Fourier filter does not apply")


def freeu_block_input(x: torch.Tensor, point: SkipPoint, b: float, s: float) -> torch.Tensor:
    """FreeU on a block input ``concat([h, skip], 1)``: ``h``'s first half times b, skip filtered.

    Returns a new tensor (``x`` is not modified): the first ``h_channels // 2`` channels of
    ``h`` multiplied by ``b``, the rest of ``h`` as is, and the trailing ``point.skip_channels``
    through ``fourier_filter(skip, 1, s)``; ``h_channels = in_channels - skip_channels``.
    """
    _check_spatial(point)
    if x.ndim != 4 or x.shape[1] != point.in_channels:
        raise RuntimeError(f"{point.module_name} got input of shape {tuple(x.shape)}, expected "
                           f"(B, {point.in_channels}, H, W) (decoder + skip channels)")
    split = point.in_channels - point.skip_channels
    half = split // 2
    skip = fourier_filter(x[:, split:], FREEU_THRESHOLD, s)
    return torch.cat([x[:, :half] * b, x[:, half:split], skip], dim=1)


def freeu_stages(skips: Sequence[SkipPoint]) -> dict[int, int]:
    """The FreeU stage (0 or 1) of each skip point in the two lowest-resolution decoder stages.

    Keys are ``SkipPoint.index``; points of higher-resolution stages are absent. A decoder
    stage is the set of skip points at one resolution ``level`` (downsamplings from the input
    size): stage 0 holds the points at the highest level present (the lowest resolution, next
    to the bottleneck), stage 1 those at the next lower level. The level is used, not the
    resolution, because a diffusers UNet without ``sample_size`` reports resolution 0.

    On a diffusers UNet every up block but the last has an upsampler, so ``up_blocks[i]`` sits
    at level ``n_up - 1 - i`` (resolution ``sample_size >> level``): stage 0 is exactly the
    resnets of ``up_blocks[0]`` and stage 1 those of ``up_blocks[1]``, the blocks diffusers
    gives ``resolution_idx`` 0 and 1. The EDM, EDM2, guided-diffusion and digits UNets list
    their decoder blocks by level the same way (bottom to top, index 0 next to the
    bottleneck), so the rule picks their two lowest-resolution decoder stages too.

    ValueError for no points, for token features (U-ViT: FreeU does not apply), or for points
    not listed bottom to top (levels must not increase along the list).
    """
    if not skips:
        raise ValueError("no skip points: FreeU needs the decoder's skips")
    for point in skips:
        _check_spatial(point)
    levels = [point.level for point in skips]
    if levels != sorted(levels, reverse=True):
        raise ValueError(f"skip levels {levels} are not listed bottom to top (non-increasing)")
    lowest = sorted(set(levels), reverse=True)[:N_STAGES]
    return {point.index: lowest.index(point.level) for point in skips if point.level in lowest}


def freeu_factors(freeu: FreeU, skips: Sequence[SkipPoint]) -> dict[int, tuple[float, float]]:
    """``(b, s)`` for each skip point (by index) that FreeU touches."""
    return {index: freeu.stage(stage) for index, stage in freeu_stages(skips).items()}


__all__ = ["FREEU_THRESHOLD", "FreeU", "fourier_filter", "freeu_block_input", "freeu_factors",
           "freeu_stages"]
