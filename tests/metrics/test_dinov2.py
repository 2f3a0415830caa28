"""FD-DINOv2 features: EDM2's preprocessing and the official DINOv2 forward, from a local file."""

from __future__ import annotations

import math
import pickle

import pytest

pytest.importorskip("timm")

import torch
from torch.nn import functional as F

from skipsearch.configuration.errors import ConfigError
from skipsearch.configuration.weights import file_sha256
from skipsearch.metrics.dinov2 import (
    DINOV2_FILE,
    DINOV2_NAME,
    DINOV2_URL,
    dinov2_features,
    preprocess,
)
from tests.support.feature_files import DEPTH, DIM, HEADS, PATCH, official_state


def edm2_resize(images: torch.Tensor) -> torch.Tensor:
    """EDM2's DINOv2Detector input, resize_mode='torch', as its source describes it."""
    x = F.interpolate(images.to(torch.float32), size=(224, 224), mode="bicubic", antialias=True)
    x = x.to(torch.float32) / 255
    x = x - torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32).reshape(1, -1, 1, 1)
    return x / torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32).reshape(1, -1, 1, 1)


@pytest.mark.parametrize("size", [(40, 56), (300, 260)])
def test_preprocess_is_edm2s_torch_resize(size):
    images = torch.randint(0, 256, (3, 3, *size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    out = preprocess(images)
    assert out.dtype == torch.float32 and out.shape == (3, 3, 224, 224)
    assert torch.equal(out, edm2_resize(images))


def cubic(t: float) -> list[float]:
    """Keys' cubic convolution weights (a = -0.75) of the four taps around offset t in [0, 1)."""
    a = -0.75

    def near(x: float) -> float:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(1 + t), near(t), near(1 - t), far(2 - t)]


def official_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """DINOv2's position table for a grid x grid input: bicubic at scale (grid + 0.1) / side."""
    table = pos_embed[0].double()
    side = math.isqrt(table.shape[0] - 1)
    step = side / (grid + 0.1)  # source pixels per output pixel, half-pixel centres
    weights = torch.zeros(grid, side, dtype=torch.float64)
    for i in range(grid):
        source = (i + 0.5) * step - 0.5
        first = math.floor(source)
        for tap, w in zip(range(first - 1, first + 3), cubic(source - first), strict=True):
            weights[i, min(max(tap, 0), side - 1)] += w
    patches = table[1:].reshape(side, side, -1)
    patches = torch.einsum("ia,jb,abd->ijd", weights, weights, patches).reshape(grid * grid, -1)
    return torch.cat((table[:1], patches))


def official_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The official DINOv2 ViT forward (normed CLS token) in float64 with plain torch ops."""
    s = {name: value.double() for name, value in state.items()}
    tokens = F.conv2d(x.double(), s["patch_embed.proj.weight"], s["patch_embed.proj.bias"],
                      stride=PATCH).flatten(2).transpose(1, 2)
    batch, count, _ = tokens.shape
    tokens = torch.cat((s["cls_token"].expand(batch, 1, DIM), tokens), dim=1)
    tokens = tokens + official_pos_embed(state["pos_embed"], math.isqrt(count))
    for i in range(DEPTH):
        b = {name.split(".", 2)[2]: value for name, value in s.items()
             if name.startswith(f"blocks.{i}.")}
        h = F.layer_norm(tokens, (DIM,), b["norm1.weight"], b["norm1.bias"], eps=1e-6)
        qkv = (h @ b["attn.qkv.weight"].T + b["attn.qkv.bias"]).reshape(batch, -1, 3, HEADS, 64)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / 8.0, dim=-1) @ v
        attention = attention.transpose(1, 2).reshape(batch, -1, DIM)
        tokens = tokens + b["ls1.gamma"] * (attention @ b["attn.proj.weight"].T
                                            + b["attn.proj.bias"])
        h = F.layer_norm(tokens, (DIM,), b["norm2.weight"], b["norm2.bias"], eps=1e-6)
        h = F.gelu(h @ b["mlp.fc1.weight"].T + b["mlp.fc1.bias"])
        tokens = tokens + b["ls2.gamma"] * (h @ b["mlp.fc2.weight"].T + b["mlp.fc2.bias"])
    tokens = F.layer_norm(tokens, (DIM,), s["norm.weight"], s["norm.bias"], eps=1e-6)
    return tokens[:, 0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("dinov2") / DINOV2_FILE
    torch.save(official_state(), path)
    return path


def test_features_equal_the_official_dinov2_forward(weights):
    images = torch.randint(0, 256, (3, 3, 64, 48), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    features = dinov2_features(weights)
    assert (features.name, features.num_features) == (DINOV2_NAME, DIM)
    assert features.sha256 == file_sha256(weights)
    reference = official_forward(torch.load(weights, weights_only=True), edm2_resize(images))
    out = features(images)
    assert out.dtype == torch.float64 and out.shape == (3, DIM)
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)
    network = features.network.double()  # the same weights in float64: only rounding is left
    out64 = network(edm2_resize(images).double())
    torch.testing.assert_close(out64, reference, atol=1e-5, rtol=1e-5)


def test_float_and_grey_images_are_quantised_like_saved_images(weights):
    features = dinov2_features(weights)
    grey = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    quantised = (grey * 127.5 + 128).clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1)
    assert torch.equal(features(grey), features(quantised))


class NotWeights:
    """Anything but tensors: unpickling it would need this class."""


def test_bad_weight_files_are_refused(tmp_path, weights):
    with pytest.raises(ConfigError, match=DINOV2_URL) as info:
        dinov2_features(tmp_path / DINOV2_FILE)
    assert info.value.key == "metric.dinov2_weights"
    unsafe = tmp_path / "unsafe.pth"
    unsafe.write_bytes(pickle.dumps({"pos_embed": NotWeights()}, protocol=2))
    with pytest.raises(ConfigError, match="not a plain DINOv2 state dict") as info:
        dinov2_features(unsafe, key="metric.other")
    assert info.value.key == "metric.other"
    other = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), other)
    with pytest.raises(ConfigError, match=f"no cls_token.*{DINOV2_FILE}") as info:
        dinov2_features(other)
    assert info.value.key == "metric.dinov2_weights" and "\n" not in str(info.value)
    registers = tmp_path / "registers.pth"
    torch.save({**torch.load(weights, weights_only=True),
                "register_tokens": torch.zeros(1, 4, DIM)}, registers)
    with pytest.raises(ConfigError, match="register_tokens"):
        dinov2_features(registers)
