"""Skip-Tuning hooks: identity at rho = 1, scaling of only the skip channels, removal."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skipsearch.tuning.schedule import SkipSchedule, linear_coefficients
from skipsearch.tuning.skips import skip_tuning


def inputs(denoiser, batch=4, seed=1):
    """Noisy images, noise levels and one-hot labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 16, 16, generator=g) * 2.0
    sigma = torch.tensor([0.05, 0.5, 2.0, 20.0])[:batch]
    labels = F.one_hot(torch.arange(batch) % 10, 10).float()
    return x, sigma, labels


def reference_forward(denoiser, x, sigma, labels, rhos):
    """D(x; sigma) written from the paper: concat(u_i, rho_i * d_i), without hooks."""
    net, sd = denoiser.net, denoiser.sigma_data
    s = sigma.reshape(-1, 1, 1, 1)
    c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt()
    c_in, c_noise = 1 / (sd**2 + s**2).sqrt(), s.log().flatten() / 4
    emb = net.embed(c_noise, labels, x.shape[0])
    h = net.conv_in(c_in * x)
    encoder_outputs = [h]
    for blocks in net.enc:
        for block in blocks:
            h = block(h, emb)
            encoder_outputs.append(h)
    for block in net.mid:
        h = block(h, emb)
    i = 0  # i = 0 is the skip consumed first, next to the bottleneck
    for blocks, up in zip(net.dec, net.ups, strict=True):
        for block in blocks:
            d_i = encoder_outputs.pop()
            h = block(torch.cat([h, rhos[i] * d_i], dim=1), emb)
            i += 1
        h = up(h)
    F_x = net.conv_out(F.silu(net.norm_out(h)))
    return c_skip * x + c_out * F_x


def test_identity_at_rho_one_is_bit_exact(tiny_denoiser):
    x, sigma, labels = inputs(tiny_denoiser)
    plain = tiny_denoiser(x, sigma, labels)
    k = len(tiny_denoiser.skips)
    with skip_tuning(tiny_denoiser, tiny_denoiser.skips, [1.0] * k):
        hooked = tiny_denoiser(x, sigma, labels)
    assert torch.equal(plain, hooked)


def test_rho_scales_skips_like_the_reference_forward(tiny_denoiser):
    x, sigma, labels = inputs(tiny_denoiser)
    k = len(tiny_denoiser.skips)
    rhos = linear_coefficients(0.9, 0.4, k)
    with torch.no_grad(), skip_tuning(tiny_denoiser, tiny_denoiser.skips, rhos):
        hooked = tiny_denoiser(x, sigma, labels)
    expected = reference_forward(tiny_denoiser, x, sigma, labels, rhos)
    untuned = tiny_denoiser(x, sigma, labels)
    assert not torch.allclose(hooked, untuned, atol=1e-4)
    torch.testing.assert_close(hooked, expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(reference_forward(tiny_denoiser, x, sigma, labels, [1.0] * k),
                          untuned, rtol=1e-5, atol=1e-6)


def test_gradients_flow_through_the_scaled_skips(tiny_denoiser):
    x, sigma, labels = inputs(tiny_denoiser)
    rhos = linear_coefficients(0.8, 0.5, len(tiny_denoiser.skips))
    x_hooked = x.clone().requires_grad_(True)
    with skip_tuning(tiny_denoiser, tiny_denoiser.skips, rhos):
        tiny_denoiser(x_hooked, sigma, labels).square().sum().backward()
    x_ref = x.clone().requires_grad_(True)
    reference_forward(tiny_denoiser, x_ref, sigma, labels, rhos).square().sum().backward()
    torch.testing.assert_close(x_hooked.grad, x_ref.grad, rtol=1e-4, atol=1e-5)


def test_only_the_trailing_skip_channels_are_scaled(tiny_denoiser):
    x, sigma, labels = inputs(tiny_denoiser)
    modules = dict(tiny_denoiser.named_modules())
    k = len(tiny_denoiser.skips)
    for point in tiny_denoiser.skips:
        block = modules[point.module_name]
        seen: dict[str, torch.Tensor] = {}

        def grab_input(module, args, key, seen=seen):
            seen[key] = args[0]

        # A forward hook runs after all pre-hooks, so it sees the input the block computes on.
        handle = block.register_forward_hook(lambda m, a, o: grab_input(m, a, "raw"))
        tiny_denoiser(x, sigma, labels)
        handle.remove()
        rhos = [1.0] * k
        rhos[point.index] = 0.25
        with skip_tuning(tiny_denoiser, tiny_denoiser.skips, rhos):
            handle = block.register_forward_hook(lambda m, a, o: grab_input(m, a, "tuned"))
            tiny_denoiser(x, sigma, labels)
            handle.remove()
        # Blocks below this one see rho = 1, so the input differs only in the scaled skip.
        raw, tuned = seen["raw"], seen["tuned"]
        split = point.in_channels - point.skip_channels
        assert raw.shape[1] == point.in_channels
        assert torch.equal(tuned[:, :split], raw[:, :split])
        assert torch.equal(tuned[:, split:], raw[:, split:] * 0.25)


def test_skip_layout_is_bottom_to_top(tiny_denoiser):
    levels = [p.level for p in tiny_denoiser.skips]
    assert len(levels) == 3 * (1 + 1)
    assert levels == sorted(levels, reverse=True)
    assert [p.resolution for p in tiny_denoiser.skips] == [4, 4, 8, 8, 16, 16]


def test_hooks_are_removed_on_exit_and_after_an_exception(tiny_denoiser):
    def count():
        return sum(len(m._forward_pre_hooks) for m in tiny_denoiser.modules())

    k = len(tiny_denoiser.skips)
    with skip_tuning(tiny_denoiser, tiny_denoiser.skips, [0.5] * k):
        assert count() == k + 1  # one per skip, one reading the noise level
    assert count() == 0
    with pytest.raises(RuntimeError, match="boom"):
        with skip_tuning(tiny_denoiser, tiny_denoiser.skips, [0.5] * k):
            raise RuntimeError("boom")
    assert count() == 0


def test_wrong_number_of_coefficients_is_refused(tiny_denoiser):
    with pytest.raises(ValueError, match="coefficients"):
        with skip_tuning(tiny_denoiser, tiny_denoiser.skips, [0.5]):
            pass


def test_a_noise_window_leaves_other_noise_levels_untouched(tiny_denoiser):
    x, _, labels = inputs(tiny_denoiser, batch=2)
    k = len(tiny_denoiser.skips)
    schedule = SkipSchedule((0.5,) * k, window=(0.3, 3.0))
    for sigma, inside in ((0.1, False), (1.0, True), (10.0, False)):
        s = torch.full((2,), sigma)
        plain = tiny_denoiser(x, s, labels)
        with skip_tuning(tiny_denoiser, tiny_denoiser.skips, schedule):
            tuned = tiny_denoiser(x, s, labels)
        expected = reference_forward(tiny_denoiser, x, s, labels, [0.5] * k) if inside else plain
        torch.testing.assert_close(tuned, expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(tuned, plain) == (not inside)


def test_profiles_blend_between_identity_and_the_schedule(tiny_denoiser):
    k = len(tiny_denoiser.skips)
    lo, hi = 0.002, 80.0
    for profile in ("rising", "falling"):
        schedule = SkipSchedule((0.4,) * k, profile=profile, profile_range=(lo, hi))
        for sigma in (lo, 0.4, hi):
            t = (math.log(sigma) - math.log(lo)) / (math.log(hi) - math.log(lo))
            w = t if profile == "rising" else 1 - t
            assert schedule.at_sigma(sigma)[0] == pytest.approx(1 + w * (0.4 - 1))
    x, _, labels = inputs(tiny_denoiser, batch=2)
    mixed = torch.tensor([0.01, 30.0])  # one image per noise level in the same batch
    schedule = SkipSchedule((0.4,) * k, profile="rising", profile_range=(lo, hi))
    with skip_tuning(tiny_denoiser, tiny_denoiser.skips, schedule):
        tuned = tiny_denoiser(x, mixed, labels)
    for i, sigma in enumerate(mixed.tolist()):
        rhos = schedule.at_sigma(sigma)
        expected = reference_forward(tiny_denoiser, x[i:i + 1], mixed[i:i + 1],
                                     labels[i:i + 1], rhos)
        torch.testing.assert_close(tuned[i:i + 1], expected, rtol=1e-4, atol=1e-5)
