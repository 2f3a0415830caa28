"""Persistent hooks, torch.compile and captured calls: the same images as eager sampling.

A CUDA graph cannot be captured without a GPU; here the capture is ``make_fx``, which like a
graph records the tensor operations of one call and replays only them (no Python runs, tensors
read in place), so a hook that branched on a coefficient's value would be caught the same way.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch.fx.experimental.proxy_tensor import make_fx

from skipsearch.execution.acceleration import Captured, GraphedCall, accelerate
from skipsearch.execution.evaluate import evaluate
from skipsearch.models import load_model
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.tuning.schedule import SkipSchedule
from skipsearch.tuning.skips import SkipHooks, effective_coefficients, skip_tuning, where_values

SCHEDULES = {
    "identity": lambda k: SkipSchedule.identity(k),
    "constant": lambda k: SkipSchedule(tuple(0.5 + 0.4 * i / (k - 1) for i in range(k))),
    "window": lambda k: SkipSchedule((0.6,) * k, window=(0.5, 5.0)),
    "rising": lambda k: SkipSchedule((0.4,) * k, profile="rising"),
    "falling in a window": lambda k: SkipSchedule((0.7,) * k, window=(0.1, 10.0),
                                                  profile="falling", profile_range=(0.05, 20.0)),
}


def bundled():
    """A fresh copy of the bundled digits model on the CPU."""
    return load_model(OmegaConf.create({"kind": "digits", "name": "digits", "weights": None}))


def fx_capture(call, inputs: tuple) -> Captured:
    """Record ``call``'s tensor operations on ``inputs``; replay runs only them."""
    traced = make_fx(call)(*inputs)
    output = traced(*inputs).clone()
    return Captured(inputs, output, lambda: output.copy_(traced(*inputs)))


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_effective_coefficients_match_the_schedule(name):
    schedule = SCHEDULES[name](4)
    sigmas = [0.002, 0.05, 0.1, 0.3, 0.5, 1.0, 4.99, 5.0, 5.01, 10.0, 20.0, 80.0]
    rho = torch.tensor(schedule.coefficients, dtype=torch.float64)
    where = torch.tensor(where_values(schedule), dtype=torch.float64)
    got = effective_coefficients(torch.tensor(sigmas, dtype=torch.float64), rho, where)
    # the reference: SkipSchedule.at_sigma, plain Python with its branches
    expected = torch.tensor([schedule.at_sigma(s) for s in sigmas], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_one_set_of_hooks_serves_every_schedule():
    model = bundled()
    k = len(model.denoiser.skips)
    hooks = SkipHooks(model.denoiser, model.denoiser.skips)
    x = torch.randn(3, 1, 16, 16)
    sigma = torch.tensor([0.2, 1.0, 30.0], dtype=torch.float64)
    labels = torch.eye(10)[:3]
    for name, make in SCHEDULES.items():
        with hooks.tuning(make(k)):
            tuned = model.denoiser(x, sigma, labels)
        assert hooks.schedule.is_identity  # back to the identity after the block
        # hooks made for this schedule alone (the shared ones multiply by exactly 1 here)
        with skip_tuning(model.denoiser, model.denoiser.skips, make(k)):
            fresh = model.denoiser(x, sigma, labels)
        assert torch.equal(tuned, fresh), name


def counting_capture(captured: list):
    """``fx_capture`` that notes the batch shape of each capture in ``captured``."""

    def counting(call, inputs):
        captured.append(tuple(inputs[0].shape))
        return fx_capture(call, inputs)

    return counting


def test_a_captured_call_reads_the_coefficients_loaded_after_capture():
    model = accelerate(bundled())
    k = len(model.denoiser.skips)
    captured = []
    counting = counting_capture(captured)
    graphed = GraphedCall(model.denoiser, counting)
    labels = torch.eye(10)[:4]
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        for name, make in SCHEDULES.items():
            for level in (0.05, 1.0, 40.0):  # inside and outside the windows
                sigma = torch.full((4,), level, dtype=torch.float64)
                with model.hooks.tuning(make(k)):
                    replayed = graphed(x, sigma, labels)
                    eager = model.denoiser(x, sigma, labels)
                torch.testing.assert_close(replayed, eager, rtol=0, atol=1e-6,
                                           msg=f"{name} at sigma {level}")
        assert captured == [(4, 1, 16, 16)]  # one capture, then only replays
        graphed(x[:2], torch.ones(2, dtype=torch.float64), labels[:2])
    assert captured == [(4, 1, 16, 16), (2, 1, 16, 16)]  # one graph per batch shape


def test_a_captured_call_is_captured_again_when_freeu_changes():
    from skipsearch.tuning.schedule import SkipSchedule

    model = accelerate(bundled())
    k = len(model.denoiser.skips)
    captured = []
    counting = counting_capture(captured)
    graphed = GraphedCall(model.denoiser, counting,
                          variant_of=lambda: model.hooks.freeu_factors)
    x, labels = torch.randn(2, 1, 16, 16), torch.eye(10)[:2]
    sigma = torch.ones(2, dtype=torch.float64)
    factors = ({"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2},
               {"b1": 1.1, "b2": 1.2, "s1": 0.5, "s2": 0.7})
    with torch.no_grad():
        for freeu in factors:  # FreeU's factors are plain numbers inside a graph
            with model.hooks.tuning(SkipSchedule((0.9,) * k, freeu=freeu)):
                replayed = graphed(x, sigma, labels)
                eager = model.denoiser(x, sigma, labels)
            torch.testing.assert_close(replayed, eager, rtol=0, atol=1e-6)
    assert captured == [(2, 1, 16, 16)] * 2
    wired = accelerate(bundled(), cuda_graph=True)  # what accelerate hands its graphs
    wired.hooks.load(SkipSchedule((1.0,) * k, freeu=factors[0]))
    assert wired.network.variant_of() == (None, wired.hooks.freeu_factors)
    assert wired.hooks.freeu_factors  # the digits UNet's two lowest stages


def test_sampling_through_a_captured_call_gives_the_eager_images():
    eager = accelerate(bundled())
    graphed = accelerate(bundled())
    graphed.network = GraphedCall(graphed.denoiser, fx_capture)
    k = len(eager.denoiser.skips)
    for name in ("identity", "window"):
        schedule = SCHEDULES[name](k)
        a = evaluate(eager, schedule, SamplerSpec("heun", 4), range(8), 8, "cpu",
                     keep_images=True)
        b = evaluate(graphed, schedule, SamplerSpec("heun", 4), range(8), 8, "cpu",
                     keep_images=True)
        torch.testing.assert_close(b.images, a.images, rtol=0, atol=1e-5)


def test_compiled_sampling_agrees_with_eager_without_recompiling_per_schedule():
    torch._dynamo.reset()
    eager = accelerate(bundled())
    compiled = accelerate(bundled(), compile_mode="default")
    k = len(eager.denoiser.skips)
    frames = []
    for name in ("constant", "window", "identity", "rising"):
        schedule = SCHEDULES[name](k)
        a = evaluate(eager, schedule, SamplerSpec("euler", 3), range(6), 6, "cpu",
                     keep_images=True)
        b = evaluate(compiled, schedule, SamplerSpec("euler", 3), range(6), 6, "cpu",
                     keep_images=True)
        # inductor fuses and reorders float32 arithmetic: agreement to 1e-4 of the range
        torch.testing.assert_close(b.images, a.images, rtol=0, atol=1e-4, msg=name)
        frames.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    assert frames[0] > 0 and len(set(frames)) == 1, frames  # compiled once, for every schedule
