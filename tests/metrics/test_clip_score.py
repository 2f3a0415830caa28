"""CLIP score: torchmetrics' per-image scores from a local folder, blocks, refusals, prompts."""

from __future__ import annotations

import json
import shutil
import socket
from types import SimpleNamespace

import pytest

pytest.importorskip("transformers")

import torch
from torch import nn
from torchmetrics.functional.multimodal.clip_score import clip_score
from torchmetrics.multimodal.clip_score import CLIPScore as TMCLIPScore
from transformers import (
    CLIPModel,
    CLIPProcessor,
)

from skipsearch.configuration.errors import ConfigError
from skipsearch.configuration.weights import content_sha256
from skipsearch.metrics.clip_score import (
    CLIPEmbeddings,
    CLIPImageText,
    CLIPScore,
    clip_image_text,
)
from skipsearch.metrics.statistic import block_ids
from skipsearch.models.text_to_image import TextToImageDenoiser
from tests.support.clip_folder import write_tiny_clip

PROMPTS = ["a red cat", "two dogs", "a boat at sea", "a cat", "blue sky", "a red cat"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny random CLIPModel and its processor (character tokenizer), saved as a folder."""
    return write_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test: everything must load from local files."""
    def refuse(*args, **kwargs):
        raise AssertionError("a CLIP score test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def network(clip_folder) -> CLIPImageText:
    return clip_image_text(clip_folder)


def random_images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, 20, 24), dtype=torch.uint8, generator=generator)


def local_clip(folder):
    """The folder's model (as torchmetrics needs it) and processor, loaded afresh."""
    model = CLIPModel.from_pretrained(str(folder), local_files_only=True)
    processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
    return model.eval().requires_grad_(False), processor


def test_scores_are_torchmetrics_clip_scores(clip_folder, network):
    images = random_images(len(PROMPTS))
    scores = network(images, PROMPTS)
    assert scores.shape == (len(PROMPTS), 1) and scores.dtype == torch.float64
    assert (scores > 0).sum() >= 2  # the comparison is not one of zeros
    model, processor = local_clip(clip_folder)
    loader = lambda: (CLIPEmbeddings(model), processor)  # noqa: E731
    for image, prompt, score in zip(images, PROMPTS, scores[:, 0].tolist(), strict=True):
        metric = TMCLIPScore(model_name_or_path=loader)
        metric.update(image, prompt)
        assert float(metric.compute()) == pytest.approx(score, rel=1e-6, abs=1e-9)
        assert float(clip_score(image, prompt, loader)) == pytest.approx(score, rel=1e-6,
                                                                          abs=1e-9)
    # and straight from transformers: logits_per_image = exp(logit_scale) * cosine
    inputs = processor(text=PROMPTS, images=list(images), return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    cosine = out.logits_per_image.diagonal().double() / model.logit_scale.exp().double()
    torch.testing.assert_close(scores[:, 0], (100 * cosine).clamp(min=0), rtol=1e-5,
                               atol=1e-5)


def test_float_images_are_quantized_first(network):
    images = random_images(3, seed=1)
    floats = (images.float() - 127.5) / 127.5
    assert torch.equal(network(floats, PROMPTS[:3]), network(images, PROMPTS[:3]))
    assert network(images[:0], []).shape == (0, 1)


def test_network_names_its_folder(clip_folder, network):
    assert network.name == "clip-tiny-clip" and network.sha256 == content_sha256(clip_folder)
    assert network.needs_prompts and network.num_features == 1 and network.img_channels == 3
    assert network.precision == "fp32"


def test_accumulator_means_per_block():
    stat = CLIPScore()
    assert stat.needs == "none" and stat.higher_is_better
    scores = torch.tensor([30.0, 10.0, 25.0, 0.0, 40.0, 12.5, 7.0], dtype=torch.float64)
    acc = stat.accumulator(blocks=3, total=len(scores))
    acc.add(scores[:4, None], PROMPTS[:4])
    acc.add(scores[4:, None].float(), [*PROMPTS[4:], "x"])
    assert acc.value() == pytest.approx(float(scores.mean()), rel=1e-12)
    ids = block_ids(0, len(scores), 3, len(scores))
    for block in range(3):
        kept = scores[ids != block]
        assert acc.value(leave_out=block) == pytest.approx(float(kept.mean()), rel=1e-12)
    with pytest.raises(ValueError, match=r"no CLIP scores"):
        stat.accumulator(blocks=1, total=2).value()


def test_a_missing_or_foreign_folder_is_one_config_error(clip_folder, tmp_path):
    with pytest.raises(ConfigError, match=r"metric.clip_weights=.*no such folder.*"
                                           r"openai/clip-vit-large-patch14"):
        clip_image_text(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"^my.key=.*no such folder"):
        clip_image_text(tmp_path / "nope", key="my.key")
    with pytest.raises(ConfigError, match=r"metric.clip_weights=None: .*save_pretrained"):
        clip_image_text(None)
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "empty").mkdir()
    for folder in (other, tmp_path / "empty"):
        with pytest.raises(ConfigError, match=r"metric.clip_weights=.*not a CLIP model folder"):
            clip_image_text(folder)


def test_a_clip_folder_that_does_not_load_is_one_config_error(clip_folder, tmp_path):
    untokenized = shutil.copytree(clip_folder, tmp_path / "untokenized")
    (untokenized / "tokenizer.json").unlink()  # transformers would load an empty vocabulary
    with pytest.raises(ConfigError, match=r"metric.clip_weights=.*no CLIP processor files"):
        clip_image_text(untokenized)
    broken = shutil.copytree(clip_folder, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match=r"metric.clip_weights=.*not a loadable") as caught:
        clip_image_text(broken)
    assert "\n" not in str(caught.value)


def stub_text_to_image(prompts) -> TextToImageDenoiser:
    """A TextToImageDenoiser around stand-in networks: enough to choose prompts."""
    inner = SimpleNamespace(sigma_min=0.002, sigma_max=80.0, sigma_range=(0.002, 80.0),
                            img_channels=4, img_resolution=8, skips=[])
    return TextToImageDenoiser(inner, nn.Identity(), None, nn.Identity(), prompts)


def test_prompts_for_follows_seed_modulo_prompts():
    prompts = ["a", "b", "c"]
    denoiser = stub_text_to_image(prompts)
    seeds = [0, 1, 2, 3, 7, 11, 300]
    assert denoiser.prompts_for(seeds) == [prompts[s % 3] for s in seeds]
    assert denoiser.prompts_for(torch.tensor([4, 5])) == ["b", "c"]
    with pytest.raises(ConfigError, match=r"model.prompts"):
        stub_text_to_image([]).prompts_for([0])
