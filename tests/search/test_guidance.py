"""Guidance searched with rho: text-to-image sweeps with prompts, FID and CLIP score."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch_fidelity")

import torch
import yaml

from skipsearch.execution.generation import generate
from skipsearch.models.denoiser import guided
from skipsearch.models.text_to_image import load_text_to_image
from skipsearch.samplers import edm_sigmas
from skipsearch.search.group import load_sweep
from skipsearch.tuning.schedule import SkipSchedule
from skipsearch.tuning.schedule_file import load_schedule
from tests.conftest import run_cli
from tests.support.clip_folder import write_tiny_clip
from tests.support.feature_files import write_random_inception
from tests.support.sd_pipeline import write_tiny_sd_pipeline
from tests.support.sdxl_pipeline import IMAGE_SIZE as SDXL_SIZE
from tests.support.sdxl_pipeline import write_tiny_sdxl_pipeline

SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear"}
PROMPTS = ["a red cat", "two dogs", "a boat at sea"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny SD pipeline, prompts, a random InceptionV3, a tiny CLIP and reference images."""
    folder = tmp_path_factory.mktemp("guidance")
    prompts = folder / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    reference = folder / "images.npz"
    rng = np.random.default_rng(0)
    np.savez(reference, images=rng.integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8))
    return {"pipeline": write_tiny_sd_pipeline(folder / "pipeline"),
            "sdxl": write_tiny_sdxl_pipeline(folder / "sdxl"), "prompts": prompts,
            "inception": write_random_inception(folder / "inception"),
            "clip": write_tiny_clip(folder / "clip"), "reference": reference}


def model_args(files, kind: str = "stable_diffusion") -> list[str]:
    """A tiny SD or SDXL pipeline with the prompts, guidance weight 2."""
    path = files["pipeline"] if kind == "stable_diffusion" else files["sdxl"]
    extra = [] if kind == "stable_diffusion" else [f"model.target_size={SDXL_SIZE}"]
    return [f"model={kind}", f"model.path={path}", f"model.prompts={files['prompts']}",
            "model.guidance_scale=2", *extra]


SAMPLER = ["sampler.sigma_min=0.03", "sampler.sigma_max=14.6"]


def test_a_schedule_samples_with_its_guidance_and_the_model_keeps_its_own(files):
    plain = load_text_to_image(files["pipeline"], SCHEDULER, "epsilon", PROMPTS, 2.0)
    fixed = load_text_to_image(files["pipeline"], SCHEDULER, "epsilon", PROMPTS, 5.0)
    sigmas = edm_sigmas(2, sigma_min=0.03, sigma_max=14.6)
    with guided(plain, 5.0):
        assert plain.guidance_scale == 5.0
        assert torch.equal(generate(plain, range(3), sigmas), generate(fixed, range(3), sigmas))
    assert plain.guidance_scale == 2.0


def test_guidance_is_refused_for_a_model_without_it():
    from skipsearch.models.digits import load_digits_denoiser

    with pytest.raises(ValueError, match="no classifier-free guidance"), \
            guided(load_digits_denoiser(), 3.0):
        pass
    with pytest.raises(ValueError, match="guidance_scale"):
        SkipSchedule((1.0,), guidance_scale=0.5)


@pytest.mark.parametrize("kind", ["stable_diffusion", "sdxl"])
def test_a_sweep_searches_guidance_with_rho_on_fid_and_clip_score(files, tmp_path, kind):
    out = tmp_path / "out"
    args = [*model_args(files, kind), *SAMPLER, "metric=fid",
            f"metric.inception_weights={files['inception']}",
            f"metric.clip_weights={files['clip']}", f"metric.reference={files['reference']}",
            "search.objectives=[score,clip_score]", "search=nsga2",
            "search.population_size=2", "search.guidance_scale={low: 1.5, high: 6}",
            "metric.n_samples=6", "metric.final_samples=6", "search.confirm_blocks=2",
            "search.confirm_top_k=1", "batch_size=6", f"out_dir={out}", "logger=none",
            "device=cpu", "search.steps=[2]", "search.n_trials=3"]
    result = run_cli("sweep", *args)
    assert result.returncode == 0, result.stderr
    sweep = load_sweep(name=f"{kind}-heun-linear", storage=f"sqlite:///{out / 'studies.db'}")
    trials = sweep.trials
    assert all("guidance_scale" in t.params for t in trials)
    baseline = next(t for t in trials if t.user_attrs.get("baseline"))
    assert baseline.params["guidance_scale"] == 2.0  # the model's own weight
    assert all(1.5 <= t.params["guidance_scale"] <= 6 for t in trials if t is not baseline)
    assert sweep.cells[0].metric_names == ["fid", "clip_score"]
    exports = sorted((out / "exports" / f"{kind}-heun-linear").glob("nfe*.yaml"))
    exported = load_schedule(exports[0])
    number = exported.study["trial"]
    assert exported.schedule.guidance_scale == trials[number].params["guidance_scale"]
    written = yaml.safe_load(exports[0].read_text())
    assert written["schedule"]["guidance_scale"] == exported.schedule.guidance_scale
    # sample draws the export again, guidance included, and reproduces its score
    again = run_cli("sample", *model_args(files, kind), "metric=fid",
                    f"metric.inception_weights={files['inception']}",
                    f"metric.reference={files['reference']}", f"schedule={exports[0]}",
                    f"out_dir={out}", "device=cpu", "batch_size=6")
    assert again.returncode == 0, again.stderr
    score, exported_score = map(float, re.search(
        r"FID ([-+.e\d]+) \(exported: ([-+.e\d]+)\)", again.stdout).groups())
    assert score == pytest.approx(exported_score, rel=1e-6)
    found = np.load(out / "samples" / exports[0].stem / "samples.npz")["images"]
    weight = exported.schedule.guidance_scale
    data = yaml.safe_load(exports[0].read_text())
    del data["schedule"]["guidance_scale"]
    same = draw(files, kind, tmp_path, data, "unguided", f"model.guidance_scale={weight}")
    assert np.array_equal(found, same)  # the file's weight is the model's weight w
    data["schedule"]["guidance_scale"] = weight + 1.0
    assert not np.array_equal(found, draw(files, kind, tmp_path, data, "other"))
    applied_as_searched(files, kind, exports[0])


def applied_as_searched(files, kind: str, path) -> None:
    """``skipsearch.apply`` on a pipeline's UNet gives the UNet calls the sweep's hooks gave."""
    from diffusers import UNet2DConditionModel

    import skipsearch
    from skipsearch.tuning.skips import SkipHooks

    exported = load_schedule(path)
    folder = files["pipeline"] if kind == "stable_diffusion" else files["sdxl"]
    unet, inner = (UNet2DConditionModel.from_pretrained(str(folder / "unet"),
                                                        local_files_only=True) for _ in "ab")
    x, t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)), 400
    context = torch.randn(2, 5, unet.config.cross_attention_dim,
                          generator=torch.Generator().manual_seed(2))
    extra = {} if kind == "stable_diffusion" else {"added_cond_kwargs": {
        "text_embeds": torch.randn(2, unet.config.projection_class_embeddings_input_dim - 6 *
                                   unet.config.addition_time_embed_dim),
        "time_ids": torch.tensor([[16.0, 16, 0, 0, 16, 16]] * 2)}}
    hooks = SkipHooks(inner, skipsearch.find_skips(inner), exported.schedule.coefficients)
    with torch.no_grad():
        expected = inner(x, t, encoder_hidden_states=context, **extra).sample
    hooks.remove()
    with skipsearch.apply(unet, path) as applied, torch.no_grad():
        assert torch.equal(unet(x, t, encoder_hidden_states=context, **extra).sample, expected)
        assert applied.call_kwargs == {"guidance_scale": exported.schedule.guidance_scale}


def draw(files, kind: str, tmp_path, data: dict, name: str, *extra: str) -> np.ndarray:
    """The images ``sample`` draws from schedule file ``data`` (written as ``name.yaml``)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_cli("sample", *model_args(files, kind), *extra, f"schedule={path}",
                     "sample.score=false", f"out_dir={tmp_path / 'out'}", "device=cpu",
                     "batch_size=6")
    assert result.returncode == 0, result.stderr
    return np.load(tmp_path / "out" / "samples" / name / "samples.npz")["images"]


@pytest.mark.parametrize(("extra", "needle"), [
    (["search.guidance_scale={low: 3, high: 6}"], "must contain model.guidance_scale=2"),
    (["search.guidance_scale={low: 0.5, high: 6}"], "needs 1 <= low <= high"),
    (["search.guidance_scale=4"], "give a range"),
    (["search.guidance_scale={low: 1, high: inf}"], "search.guidance_scale.high"),
])
def test_a_bad_guidance_range_is_one_line(files, tmp_path, extra, needle):
    args = [*model_args(files), "metric=fid", f"metric.inception_weights={files['inception']}",
            f"metric.reference={files['reference']}", f"out_dir={tmp_path / 'out'}",
            "logger=none", "device=cpu", *extra]
    refused(run_cli("sweep", *args), needle, tmp_path)


def test_guidance_is_searched_only_where_a_model_has_it(tmp_path):
    result = run_cli("sweep", "search.guidance_scale={low: 1, high: 6}",
                     f"out_dir={tmp_path / 'out'}", "logger=none", "device=cpu")
    refused(result, "model.kind=digits has no classifier-free guidance", tmp_path)
    result = run_cli("sweep", "model=uvit", f"model.path={tmp_path}",
                     "search.guidance_scale={low: 1, high: 6}",
                     f"out_dir={tmp_path / 'out'}", "logger=none", "device=cpu")
    refused(result, "needs its null class", tmp_path)


def refused(result, needle: str, tmp_path) -> None:
    """One line naming search.guidance_scale and ``needle``, exit 2, no study written."""
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "search.guidance_scale" in line and needle in line, result.stderr
    assert not (tmp_path / "out" / "studies.db").exists()
