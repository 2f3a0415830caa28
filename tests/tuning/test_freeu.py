"""FreeU through the skip hooks: equal to diffusers' enable_freeu, the filter, the stages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel

from skipsearch.models.digits import load_digits_denoiser
from skipsearch.models.guided_unet import GuidedUNet, GuidedUNetConfig
from skipsearch.tuning.freeu import (
    FreeU,
    fourier_filter,
    freeu_block_input,
    freeu_factors,
    freeu_stages,
)
from skipsearch.tuning.pipelines import find_skips
from skipsearch.tuning.skips import SkipPoint
from tests.support.diffusers_nets import TINY_UNET2D, noisy, tiny

# TINY_SD_UNET's sizes with three levels, so that stage 2 exists and must stay untouched.
TINY_SD3_UNET = {
    "sample_size": 16, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
    "block_out_channels": (32, 32, 64), "norm_num_groups": 8, "attention_head_dim": 8,
    "cross_attention_dim": 32,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}
FACTORS = FreeU(b1=1.3, b2=1.4, s1=0.9, s2=0.2)  # the SD 1.x values FreeU's authors suggest


def hook_freeu(unet, freeu: FreeU) -> list:
    """Plain forward pre-hooks that run freeu_block_input on the points of FreeU's stages."""
    skips, modules = find_skips(unet), dict(unet.named_modules())
    factors, handles = freeu_factors(freeu, skips), []
    for point in skips:
        if point.index not in factors:
            continue
        b, s = factors[point.index]

        def hook(module, args, point=point, b=b, s=s):
            return (freeu_block_input(args[0], point, b, s), *args[1:])

        handles.append(modules[point.module_name].register_forward_pre_hook(hook))
    return handles


def compare_with_diffusers(unet, call) -> None:
    """``call(unet)`` with diffusers' enable_freeu equals it with the hooks, bit for bit."""
    plain = call(unet)
    unet.enable_freeu(s1=FACTORS.s1, s2=FACTORS.s2, b1=FACTORS.b1, b2=FACTORS.b2)
    try:
        theirs = call(unet)
    finally:
        unet.disable_freeu()
    assert torch.equal(call(unet), plain)  # disable_freeu restores the plain model
    handles = hook_freeu(unet, FACTORS)
    try:
        ours = call(unet)
    finally:
        for handle in handles:
            handle.remove()
    assert not torch.equal(theirs, plain)  # FreeU changed the output...
    # ...and the hooks give the same values bit for bit: the same elementwise products (h's
    # first half times the same Python float b) and the same float32 FFT ops feed each resnet.
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("size", [16, 12])  # 12: non-power-of-2 feature maps (3, 6, 12)
def test_hooks_equal_diffusers_freeu_on_unet2d_condition(size):
    unet = tiny(UNet2DConditionModel, TINY_SD3_UNET)
    x, t = noisy((2, 4, size, size)), torch.tensor([10, 700])
    context = noisy((2, 5, 32), seed=2)
    compare_with_diffusers(unet, lambda u: u(x, t, encoder_hidden_states=context).sample)


def test_hooks_equal_diffusers_freeu_in_bfloat16():
    unet = tiny(UNet2DConditionModel, TINY_SD3_UNET).to(torch.bfloat16)
    x, t = noisy((2, 4, 16, 16)).bfloat16(), torch.tensor([10, 700])
    context = noisy((2, 5, 32), seed=2).bfloat16()
    compare_with_diffusers(unet, lambda u: u(x, t, encoder_hidden_states=context).sample)


def test_freeu_stages_are_up_blocks_0_and_1_on_diffusers_unets():
    for unet in (tiny(UNet2DConditionModel, TINY_SD3_UNET), tiny(UNet2DModel, TINY_UNET2D)):
        skips = find_skips(unet)
        stages = freeu_stages(skips)
        named = {p.module_name.split(".resnets")[0]: stages.get(p.index) for p in skips}
        assert named == {"up_blocks.0": 0, "up_blocks.1": 1, "up_blocks.2": None}
        lowest = unet.config.sample_size >> 2
        assert {p.resolution for p in skips if stages.get(p.index) == 0} == {lowest}
        assert {p.resolution for p in skips if stages.get(p.index) == 1} == {2 * lowest}


# --- fourier_filter ----------------------------------------------------------------------------


def reference_filter(x: np.ndarray, threshold: int, scale: float) -> np.ndarray:
    """FreeU's filter from its formula, in float64 numpy: centred spectrum, scaled square."""
    h, w = x.shape[-2:]
    spectrum = np.fft.fftshift(np.fft.fft2(x.astype(np.float64)), axes=(-2, -1))
    rows = [r for r in range(h // 2 - threshold, h // 2 + threshold) if 0 <= r < h]
    cols = [c for c in range(w // 2 - threshold, w // 2 + threshold) if 0 <= c < w]
    weight = np.ones((h, w))
    weight[np.ix_(rows, cols)] = scale
    return np.fft.ifft2(np.fft.ifftshift(spectrum * weight, axes=(-2, -1))).real


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 6, 10), (1, 2, 5, 7), (1, 1, 1, 1)])
@pytest.mark.parametrize("scale", [0.0, 0.2, 1.0, 1.5])
@pytest.mark.parametrize("threshold", [0, 1])
def test_fourier_filter_matches_the_formula(shape, scale, threshold):
    x = noisy(shape, scale=3.0)
    out = fourier_filter(x, threshold, scale)
    assert out.dtype == x.dtype and out.shape == x.shape
    expected = reference_filter(x.numpy(), threshold, scale)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=2e-5)  # float32 FFT
    if scale == 1.0 or threshold == 0:  # the identity up to FFT rounding
        torch.testing.assert_close(out, x, rtol=0, atol=2e-5)


def test_fourier_filter_window_holds_frequency_minus_one_not_plus_one():
    # A pure cosine of frequency 1 along W is e^{+i} + e^{-i}: only the -1 half is scaled.
    w = torch.arange(8, dtype=torch.float64)
    x = torch.cos(2 * math.pi * w / 8).expand(1, 1, 8, 8).float()
    torch.testing.assert_close(fourier_filter(x, 1, 0.0), x / 2, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_fourier_filter_computes_in_float32_and_returns_the_input_dtype(dtype):
    x = noisy((2, 3, 6, 6)).to(dtype)
    out = fourier_filter(x, 1, 0.5)
    assert out.dtype == dtype
    via_float32 = fourier_filter(x.float(), 1, 0.5).to(dtype)
    assert torch.equal(out, via_float32)  # float64 too is cast down, as in diffusers


def test_fourier_filter_rejects_bad_arguments():
    with pytest.raises(ValueError, match="B, C, H, W"):
        fourier_filter(torch.zeros(3, 8, 8), 1, 0.5)
    with pytest.raises(ValueError, match="threshold"):
        fourier_filter(torch.zeros(1, 3, 8, 8), -1, 0.5)


# --- freeu_block_input -------------------------------------------------------------------------


def test_freeu_block_input_scales_half_of_h_and_filters_the_skip():
    point = SkipPoint(0, 2, 8, skip_channels=4, in_channels=10, module_name="dec.0")
    x = noisy((2, 10, 8, 8))
    before = x.clone()
    out = freeu_block_input(x, point, 1.5, 0.3)
    assert torch.equal(x, before)  # out of place
    assert torch.equal(out[:, :3], x[:, :3] * 1.5)  # h has 6 channels: the first 3 scaled
    assert torch.equal(out[:, 3:6], x[:, 3:6])
    assert torch.equal(out[:, 6:], fourier_filter(x[:, 6:], 1, 0.3))


def test_freeu_block_input_rejects_token_features_and_wrong_channels():
    tokens = SkipPoint(0, 0, 4, 8, 16, "out_blocks.0.skip_linear", feature_dim=-1)
    with pytest.raises(ValueError, match="no spatial grid"):
        freeu_block_input(torch.zeros(2, 16, 16), tokens, 1.2, 0.5)
    point = SkipPoint(0, 0, 8, 4, 10, "dec.0")
    with pytest.raises(RuntimeError, match="expected"):
        freeu_block_input(torch.zeros(2, 9, 8, 8), point, 1.2, 0.5)


# --- stages ------------------------------------------------------------------------------------


def test_freeu_stages_on_the_digits_unet_are_the_two_lowest_resolutions():
    skips = load_digits_denoiser().skips
    assert [p.level for p in skips] == [2, 2, 1, 1, 0, 0]
    assert freeu_stages(skips) == {0: 0, 1: 0, 2: 1, 3: 1}
    assert {skips[i].resolution for i in (0, 1)} == {4}
    assert {skips[i].resolution for i in (2, 3)} == {8}


def test_freeu_stages_on_a_guided_unet():
    cfg = GuidedUNetConfig(image_size=16, in_channels=3, model_channels=32, out_channels=3,
                           num_res_blocks=1, attention_resolutions=(), channel_mult=(1, 2, 2))
    skips = GuidedUNet(cfg).skip_points
    stages = freeu_stages(skips)
    assert {p.resolution: stages.get(p.index) for p in skips} == {4: 0, 8: 1, 16: None}


def test_freeu_stages_rejects_tokens_disorder_and_nothing():
    uvit = [SkipPoint(i, 1 - i, 4, 8, 16, f"out_blocks.{i}.skip_linear", feature_dim=-1)
            for i in range(2)]
    with pytest.raises(ValueError, match="no spatial grid"):
        freeu_stages(uvit)
    top_first = [SkipPoint(i, i, 16 >> i, 4, 8, f"dec.{i}") for i in range(3)]
    with pytest.raises(ValueError, match="bottom to top"):
        freeu_stages(top_first)
    with pytest.raises(ValueError, match="no skip points"):
        freeu_stages([])
    single = [SkipPoint(0, 0, 8, 4, 8, "dec.0")]
    assert freeu_stages(single) == {0: 0}


# --- FreeU -------------------------------------------------------------------------------------


def test_freeu_values_round_trip_and_identity():
    assert FreeU.identity().is_identity and not FACTORS.is_identity
    assert FreeU.from_dict(FACTORS.to_dict()) == FACTORS
    assert FACTORS.to_dict() == {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}
    assert FACTORS.stage(0) == (1.3, 0.9) and FACTORS.stage(1) == (1.4, 0.2)
    assert isinstance(FreeU(1, 2, 0, 1).b1, float)
    with pytest.raises(ValueError, match="stages 0 and 1"):
        FACTORS.stage(2)


@pytest.mark.parametrize("factors", [
    {"b1": 0.0, "b2": 1.0, "s1": 1.0, "s2": 1.0},
    {"b1": 1.0, "b2": -1.0, "s1": 1.0, "s2": 1.0},
    {"b1": 1.0, "b2": 1.0, "s1": -0.1, "s2": 1.0},
    {"b1": 1.0, "b2": 1.0, "s1": 1.0, "s2": math.inf},
    {"b1": math.nan, "b2": 1.0, "s1": 1.0, "s2": 1.0},
    {"b1": True, "b2": 1.0, "s1": 1.0, "s2": 1.0},
    {"b1": "1", "b2": 1.0, "s1": 1.0, "s2": 1.0},
])
def test_freeu_rejects_bad_factors(factors):
    with pytest.raises(ValueError, match="freeu"):
        FreeU(**factors)
    with pytest.raises(ValueError, match="freeu"):
        FreeU.from_dict(factors)


def test_freeu_from_dict_needs_exactly_the_four_keys():
    with pytest.raises(ValueError, match="b1, b2, s1, s2"):
        FreeU.from_dict({"b1": 1.0, "b2": 1.0, "s1": 1.0})
    with pytest.raises(ValueError, match="b1, b2, s1, s2"):
        FreeU.from_dict({"b1": 1.0, "b2": 1.0, "s1": 1.0, "s2": 1.0, "b3": 1.0})
    assert FreeU(1.0, 1.0, 0.0, 0.0).s1 == 0.0  # s = 0 is allowed (diffusers would switch off)


# --- FreeU in the schedule: the persistent hooks, apply, and Skip-Tuning together -------------


def test_apply_with_a_freeu_schedule_equals_diffusers_and_removes_cleanly():
    import skipsearch
    from skipsearch.tuning.schedule import SkipSchedule

    unet = tiny(UNet2DConditionModel, TINY_SD3_UNET)
    x, t = noisy((2, 4, 16, 16)), torch.tensor([10, 700])
    context = noisy((2, 5, 32), seed=2)

    def call(u):
        return u(x, t, encoder_hidden_states=context).sample

    k, plain = len(find_skips(unet)), call(unet)
    unet.enable_freeu(s1=FACTORS.s1, s2=FACTORS.s2, b1=FACTORS.b1, b2=FACTORS.b2)
    theirs = call(unet)
    unet.disable_freeu()
    with skipsearch.apply(unet, SkipSchedule((1.0,) * k, freeu=FACTORS.to_dict())):
        assert torch.equal(call(unet), theirs)
    assert torch.equal(call(unet), plain)
    # FreeU's factors all 1: no FreeU at all, so the identity stays bit-exact
    with skipsearch.apply(unet, SkipSchedule((1.0,) * k, freeu=FreeU.identity().to_dict())):
        assert torch.equal(call(unet), plain)


def test_skip_tuning_and_freeu_together_filter_then_scale_each_skip():
    from skipsearch.tuning.schedule import SkipSchedule
    from skipsearch.tuning.skips import SkipHooks

    denoiser = load_digits_denoiser()
    skips, rho = denoiser.skips, (0.7, 0.8, 0.9, 1.1, 0.6, 1.2)
    x, sigma = noisy((2, 1, 16, 16)), torch.tensor([2.0, 2.0])
    labels = torch.eye(10)[:2]
    factors, modules, handles = freeu_factors(FACTORS, skips), dict(denoiser.named_modules()), []
    for point in skips:  # the reference: FreeU, then rho on the skip channels, by hand
        def hook(module, args, point=point):
            y = args[0]
            if point.index in factors:
                y = freeu_block_input(y, point, *factors[point.index])
            split = point.in_channels - point.skip_channels
            return (torch.cat([y[:, :split], y[:, split:] * rho[point.index]], dim=1),
                    *args[1:])

        handles.append(modules[point.module_name].register_forward_pre_hook(hook))
    with torch.no_grad():
        expected = denoiser(x, sigma, labels)
    for handle in handles:
        handle.remove()
    hooks = SkipHooks(denoiser, skips, SkipSchedule(rho, freeu=FACTORS.to_dict()))
    with torch.no_grad():
        torch.testing.assert_close(denoiser(x, sigma, labels), expected, rtol=0, atol=1e-6)
    hooks.load(SkipSchedule((1.0,) * len(skips)))
    with torch.no_grad():
        plain = denoiser(x, sigma, labels)
    hooks.remove()
    with torch.no_grad():
        assert torch.equal(denoiser(x, sigma, labels), plain)  # loaded identity: no FreeU


def test_a_freeu_schedule_is_refused_on_token_skips_before_it_loads():
    from torch import nn

    from skipsearch.tuning.schedule import SkipSchedule
    from skipsearch.tuning.skips import SkipHooks

    model = nn.Sequential(nn.Linear(8, 8))
    tokens = [SkipPoint(0, 0, 0, 4, 8, "0", feature_dim=-1)]
    hooks = SkipHooks(model, tokens)
    with pytest.raises(ValueError, match="token features"):
        hooks.load(SkipSchedule((0.9,), freeu=FACTORS.to_dict()))
    assert hooks.schedule.coefficients == (1.0,)  # nothing changed
    hooks.remove()
