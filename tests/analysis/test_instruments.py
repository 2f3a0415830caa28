"""Window study and denoising-loss analysis on tiny networks, against hand-written references."""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from skipsearch.analysis.loss import (
    CSV_COLUMNS as LOSS_COLUMNS,
)
from skipsearch.analysis.loss import (
    denoising_losses,
    read_loss_csv,
    sigma_grid,
    write_loss_csv,
)
from skipsearch.analysis.windows import (
    CSV_COLUMNS as WINDOW_COLUMNS,
)
from skipsearch.analysis.windows import (
    evaluated_levels,
    noise_windows,
    read_window_csv,
    restricted,
    run_window_study,
    write_window_csv,
)
from skipsearch.execution.generation import generate
from skipsearch.metrics.features import DigitsClassifier, FeatureExtractor
from skipsearch.metrics.fid import FIDScorer
from skipsearch.metrics.reference import feature_sums, reference_images
from skipsearch.models import LoadedModel
from skipsearch.samplers.spec import SamplerSpec
from skipsearch.tuning.schedule import SkipSchedule
from skipsearch.tuning.skips import effective_coefficients, skip_tuning, where_values
from tests.conftest import TINY_CLASSIFIER, run_cli, scaled_up

STRONG = (0.3, 0.5, 0.7, 0.4, 0.6, 0.2)  # far from 1, so a tuned call visibly differs


@pytest.fixture
def extractor():
    """A random tiny classifier whose features spread over O(1)."""
    torch.manual_seed(3)
    return FeatureExtractor(scaled_up(DigitsClassifier(TINY_CLASSIFIER)), "tiny", "0" * 64)


def test_windows_are_consecutive_levels_from_the_highest_noise():
    levels = [80.0, 20.0, 5.0, 1.0, 0.2, 0.05, 0.002]
    windows = noise_windows(levels, 3)
    assert [(w.first_step, w.last_step) for w in windows] == [(0, 2), (3, 5), (6, 6)]
    assert [(w.sigma_hi, w.sigma_lo) for w in windows] == [(80.0, 5.0), (1.0, 0.05),
                                                           (0.002, 0.002)]
    assert [(w.first_step, w.last_step) for w in noise_windows(levels, 2, 2)] == [(0, 1), (2, 3)]
    with pytest.raises(ValueError, match="3 windows of 3 levels need 9"):
        noise_windows(levels, 3, 3)
    sigmas = SamplerSpec("heun", 5).sigmas()
    assert evaluated_levels(sigmas) == [float(s) for s in sigmas[:-1]]  # the final 0 is not


def recorded_run(denoiser, schedule: SkipSchedule, sampler: str, steps: int):
    """(sigma, input, output) of every network call while sampling two seeds."""
    calls = []

    def network(x, sigma, labels):
        out = denoiser(x, sigma, labels)
        calls.append((float(sigma.reshape(-1)[0]), x.clone(), labels, out.clone()))
        return out

    sigmas = SamplerSpec(sampler, steps).sigmas()
    with skip_tuning(denoiser, denoiser.skips, schedule):
        generate(denoiser, [0, 1], sigmas, sampler, network=network)
    return calls, evaluated_levels(sigmas)


@pytest.mark.parametrize("sampler", ["heun", "euler"])
def test_each_window_changes_only_the_network_calls_at_its_levels(tiny_denoiser, sampler):
    """Outside the window the tuned network is the untuned one; states before it are untouched.

    x_i is the input of the first call at t_i. Heun's step i - 1 evaluates its correction at
    t_i, so with the window starting at t_a the states x_0 .. x_{a-1} must be bit-identical to
    the baseline's (x_0 .. x_a for Euler), and the next one must differ.
    """
    steps, width = 6, 2
    schedule = SkipSchedule(STRONG)
    base_calls, levels = recorded_run(tiny_denoiser, SkipSchedule.identity(6), sampler, steps)
    windows = noise_windows(levels, width)
    assert len(windows) == 3
    for w in windows:
        calls, _ = recorded_run(tiny_denoiser, restricted(schedule, w), sampler, steps)
        assert len(calls) == len(base_calls)
        inside = set(levels[w.first_step:w.last_step + 1])
        for sigma, x, labels, out in calls:
            untuned = tiny_denoiser(x, torch.tensor(sigma, dtype=torch.float64), labels)
            assert torch.equal(out, untuned) == (sigma not in inside), (w, sigma)
        every = 2 if sampler == "heun" else 1
        states = [call[1] for call in calls[::every]]
        base_states = [call[1] for call in base_calls[::every]]
        # The first state that a tuned call can reach: Heun's correction of the step before.
        same = max(w.first_step, 1) if sampler == "heun" else w.first_step + 1
        for i in range(min(same, len(states))):
            assert torch.equal(states[i], base_states[i]), (w, i)
        if same < len(states):
            assert not torch.equal(states[same], base_states[same]), (w, same)


def test_window_study_rows_on_common_seeds(tiny_denoiser, extractor, tmp_path):
    model = LoadedModel(tiny_denoiser, "tiny", Path("tiny"), "0" * 64)
    scorer = FIDScorer(extractor, feature_sums(extractor, reference_images("digits")[:200]))
    sampler = SamplerSpec("heun", 4)
    levels = evaluated_levels(sampler.sigmas())
    schedule = SkipSchedule(STRONG)
    everything = noise_windows(levels, len(levels))  # one window holding every level
    halves = noise_windows(levels, 2)
    rows = run_window_study(model, schedule, sampler, [*everything, *halves], range(24), 8,
                            "cpu", scorer)
    assert [r.kind for r in rows] == ["baseline", "full", "window", "window", "window"]
    assert rows[0].change == 0.0 and rows[0].fid == rows[1].fid_baseline
    assert rows[2].fid == rows[1].fid  # the same images: the common seeds at work
    assert rows[1].change != 0.0 and all(math.isfinite(r.fid) for r in rows)
    # A schedule that carries a window of its own is studied over the full range.
    narrow = replace(schedule, window=(0.0, 0.0))
    again = run_window_study(model, narrow, sampler, [], range(24), 8, "cpu", scorer)
    assert again[1].fid == rows[1].fid
    path = write_window_csv(rows, tmp_path / "windows.csv")
    with path.open() as f:
        assert tuple(next(csv.reader(f))) == WINDOW_COLUMNS
    back = read_window_csv(path)
    assert [(r.kind, r.fid, r.window) for r in back] == [(r.kind, r.fid, r.window) for r in rows]
    assert all(r.change_interval is None for r in back)


def hand_losses(denoiser, schedule, images, labels, sigmas, features, seed_start):
    """The losses image by image, sigma by sigma, written out from the definitions."""
    sd = denoiser.sigma_data
    out = []
    for sigma in sigmas:
        weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
        totals = [0.0, 0.0, 0.0, 0.0]
        for k in range(len(images)):
            x = images[k:k + 1]
            n = torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(seed_start + k))
            y = x + sigma * n[None]
            s = torch.tensor([sigma], dtype=torch.float64)
            c = None if labels is None else labels[k:k + 1]
            plain = denoiser(y, s, c)
            with skip_tuning(denoiser, denoiser.skips, schedule):
                tuned = denoiser(y, s, c)
            for j, d in enumerate((plain, tuned)):
                totals[j] += weight * float(((d.double() - x.double()) ** 2).mean())
                diff = features(d.clamp(-1, 1)).double() - features(x).double()
                totals[2 + j] += float((diff ** 2).sum())
        out.append([t / len(images) for t in totals])
    return out


def test_losses_match_a_hand_written_loop(tiny_denoiser, extractor, tmp_path):
    images = reference_images("digits")[:7]
    labels = torch.eye(10)[[3, 1, 4, 1, 5, 9, 2]]
    sigmas = sigma_grid(0.01, 20.0, 4)
    schedule = replace(SkipSchedule(STRONG), window=(0.05, 30.0))  # the window applies too
    model = LoadedModel(tiny_denoiser, "tiny", Path("tiny"), "0" * 64)
    rows = denoising_losses(model, schedule, images, labels, sigmas, extractor, 3, "cpu", 5)
    expected = hand_losses(tiny_denoiser, schedule, images, labels, sigmas, extractor, 5)
    for r, (pixel, pixel_tuned, feat, feat_tuned) in zip(rows, expected, strict=True):
        assert r.n_images == 7
        assert r.pixel_untuned == pytest.approx(pixel, rel=1e-5)
        assert r.pixel_tuned == pytest.approx(pixel_tuned, rel=1e-5)
        assert r.feature_untuned == pytest.approx(feat, rel=1e-5)
        assert r.feature_tuned == pytest.approx(feat_tuned, rel=1e-5)
    assert rows[0].pixel_ratio == 1.0 and rows[0].feature_ratio == 1.0  # sigma 0.01: outside
    assert rows[1].pixel_ratio != 1.0
    path = write_loss_csv(rows, tmp_path / "loss.csv")
    with path.open() as f:
        assert tuple(next(csv.reader(f))) == LOSS_COLUMNS
    assert read_loss_csv(path) == rows


def test_sigma_grid_is_log_spaced():
    grid = sigma_grid(0.002, 80.0, 5)
    assert grid[0] == pytest.approx(0.002) and grid[-1] == pytest.approx(80.0)
    ratios = [b / a for a, b in itertools.pairwise(grid)]
    assert ratios == pytest.approx([(80 / 0.002) ** 0.25] * 4)


RHO = ["skip.params.rho_top=0.6", "skip.params.rho_bottom=0.8"]


def test_windows_and_analyze_commands_write_their_files(tiny_overrides, tmp_path):
    study = tmp_path / "out" / "reports" / "digits-heun-linear"
    result = run_cli("windows", *tiny_overrides, *RHO, "sampler.steps=4", "windows.width=2")
    assert result.returncode == 0, result.stderr
    (folder,) = (study / "schedules").iterdir()  # the config's schedule: config-<hash>
    assert folder.name.startswith("config-")
    rows = read_window_csv(folder / "windows.csv")
    assert [r.kind for r in rows] == ["baseline", "full", "window", "window"]
    assert (folder / "windows.png").stat().st_size > 1000
    result = run_cli("analyze", *tiny_overrides, *RHO, "analyze.n_images=6",
                     "analyze.n_sigmas=3")
    assert result.returncode == 0, result.stderr
    with (folder / "loss.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 3 and list(lines[0]) == list(LOSS_COLUMNS)
    assert (folder / "loss.png").stat().st_size > 1000
    # another schedule goes to a folder of its own: nothing of the first is overwritten
    other = run_cli("windows", *tiny_overrides, "skip.params.rho_top=0.7",
                    "skip.params.rho_bottom=0.9", "sampler.steps=4", "windows.width=2")
    assert other.returncode == 0, other.stderr
    folders = sorted((study / "schedules").iterdir())
    assert len(folders) == 2 and read_window_csv(folder / "windows.csv") == rows


@pytest.mark.parametrize(("override", "key"), [
    ("windows.count=9", "windows.count"),
    ("windows.width=0", "windows.width"),
    ("sampler=edm_stochastic", "sampler.S_churn"),
])
def test_window_study_input_errors(tiny_overrides, override, key):
    result = run_cli("windows", *tiny_overrides, "sampler.steps=4", override)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(("override", "key"), [
    ("analyze.sigma_min=0", "analyze.sigma_min"),
    ("analyze.sigma_max=0.001", "analyze.sigma_max"),
    ("analyze.n_images=0", "analyze.n_images"),
    ("skip.params.rho_top=1.0", "skip.params"),
])
def test_analyze_input_errors(tiny_overrides, override, key):
    result = run_cli("analyze", *tiny_overrides, override)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("profile", ["rising_time", "falling_time"])
def test_time_profiles_make_rho_linear_in_time(tiny_denoiser, profile):
    """rho(t) = 1 + w(t) (rho - 1) with w linear in t = sigma: 1 at sigma_max for rising_time."""
    k = len(tiny_denoiser.skips)
    lo, hi = 0.002, 80.0
    schedule = SkipSchedule(STRONG[:k], profile=profile, profile_range=(lo, hi))
    sigmas = [0.001, 0.002, 1.0, 20.0, 40.001, 80.0, 100.0]
    for sigma in sigmas:
        w = min(max((sigma - lo) / (hi - lo), 0.0), 1.0)
        w = w if profile == "rising_time" else 1.0 - w
        expected = [1.0 + w * (c - 1.0) for c in STRONG[:k]]
        assert schedule.at_sigma(sigma) == pytest.approx(expected, abs=1e-12)
    rho = torch.tensor(schedule.coefficients, dtype=torch.float64)
    where = torch.tensor(where_values(schedule), dtype=torch.float64)
    got = effective_coefficients(torch.tensor(sigmas, dtype=torch.float64), rho, where)
    torch.testing.assert_close(got, torch.tensor([schedule.at_sigma(s) for s in sigmas],
                                                 dtype=torch.float64), rtol=0, atol=1e-12)
    # The hooks, one image per noise level in one batch, against constant schedules.
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    mixed = torch.tensor([2.0, 60.0], dtype=torch.float64)
    labels = torch.eye(10)[[0, 1]]
    with skip_tuning(tiny_denoiser, tiny_denoiser.skips, schedule):
        tuned = tiny_denoiser(x, mixed, labels)
    for i, sigma in enumerate(mixed.tolist()):
        with skip_tuning(tiny_denoiser, tiny_denoiser.skips, schedule.at_sigma(sigma)):
            alone = tiny_denoiser(x[i:i + 1], mixed[i:i + 1], labels[i:i + 1])
        torch.testing.assert_close(tuned[i:i + 1], alone, rtol=1e-4, atol=1e-5)
