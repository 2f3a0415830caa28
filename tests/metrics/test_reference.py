"""Reference statistics: folder, zip and npz inputs, the cache's hits, misses and refusals."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from skipsearch.configuration.errors import ConfigError
from skipsearch.metrics import reference
from skipsearch.metrics.features import DigitsClassifier, DigitsClassifierConfig, FeatureExtractor
from skipsearch.metrics.reference import cached_reference, published_statistics, reference_images


def tiny_extractor(sha256: str, feature_dim: int = 8, seed: int = 0) -> FeatureExtractor:
    """A random RGB classifier on 8x8 images, named 'tiny' with the given hash."""
    torch.manual_seed(seed)
    config = DigitsClassifierConfig(img_resolution=8, img_channels=3, width=4,
                                    feature_dim=feature_dim)
    return FeatureExtractor(DigitsClassifier(config), "tiny", sha256)


@pytest.fixture
def pixels() -> np.ndarray:
    """8 random RGB images of 8x8 pixels, uint8 (N, H, W, C)."""
    return np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)


@pytest.fixture
def folder(pixels, tmp_path) -> Path:
    """The images as PNG files in a folder."""
    path = tmp_path / "refs"
    path.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(path / f"img{i}.png")
    return path


@pytest.fixture
def archive(folder, tmp_path) -> Path:
    """The same PNG files in a zip, stored out of order, with a folder and a text member."""
    path = tmp_path / "refs.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes/", "")
        z.writestr("README.txt", "not an image")
        for png in sorted(folder.iterdir(), reverse=True):
            z.write(png, png.name)
    return path


def same_sums(a: reference.FeatureSums, b: reference.FeatureSums) -> bool:
    """Bit-identical sums and equal counts."""
    return torch.equal(a.total, b.total) and torch.equal(a.outer, b.outer) and a.count == b.count


def test_zip_folder_and_npz_give_the_same_images_and_sums(pixels, folder, archive, tmp_path):
    npz = tmp_path / "refs.npz"
    np.savez(npz, images=pixels)
    images = reference_images(str(archive))
    assert images.shape == (8, 3, 8, 8)
    assert torch.equal(images, reference_images(str(folder)))
    assert torch.equal(images, reference_images(str(npz)))
    extractor, cache = tiny_extractor("a" * 64), tmp_path / "cache"
    sums = cached_reference(str(archive), extractor, cache)
    assert same_sums(sums, cached_reference(str(folder), extractor, cache))
    assert same_sums(sums, cached_reference(str(npz), extractor, cache))
    assert len(list(cache.glob("*.safetensors"))) == 3


def test_a_second_call_reads_the_cache(folder, archive, tmp_path, monkeypatch):
    extractor, cache = tiny_extractor("a" * 64), tmp_path / "cache"
    first = {name: cached_reference(str(name), extractor, cache) for name in (folder, archive)}

    def refuse(name: str) -> torch.Tensor:
        raise AssertionError(f"decoded {name} although its statistics are cached")

    monkeypatch.setattr(reference, "reference_images", refuse)
    for name, sums in first.items():
        assert same_sums(sums, cached_reference(str(name), extractor, cache))


def test_another_extractor_misses_and_writes_its_own_file(folder, tmp_path):
    cache = tmp_path / "cache"
    cached_reference(str(folder), tiny_extractor("a" * 64), cache)
    cached_reference(str(folder), tiny_extractor("b" * 64, seed=1), cache)
    names = sorted(p.name for p in cache.glob("*.safetensors"))
    assert len(names) == 2 and "aaaaaaaaaaaa" in names[0] and "bbbbbbbbbbbb" in names[1]


def only_cache_file(cache: Path) -> Path:
    """The one statistics file in ``cache``."""
    (path,) = cache.glob("*.safetensors")
    return path


def test_a_cache_file_of_another_extractor_is_refused(folder, tmp_path):
    cache = tmp_path / "cache"
    cached_reference(str(folder), tiny_extractor("a" * 64), cache)
    source = only_cache_file(cache)
    # Copy it to the name the 'b' extractor would use: its metadata still names 'a'.
    target = cache / source.name.replace("a" * 12, "b" * 12)
    shutil.copy(source, target)
    with pytest.raises(ConfigError) as err:
        cached_reference(str(folder), tiny_extractor("b" * 64), cache)
    assert err.value.key == "metric.reference" and err.value.value == str(target)
    assert "extractor_sha256" in err.value.fix and f"delete {target}" in err.value.fix


def test_a_cache_file_of_other_data_is_refused(folder, tmp_path):
    cache, extractor = tmp_path / "cache", tiny_extractor("a" * 64)
    cached_reference(str(folder), extractor, cache)
    path = only_cache_file(cache)
    save_file(load_file(str(path)), str(path),
              metadata={"extractor_sha256": "a" * 64, "data_sha256": "f" * 64})
    with pytest.raises(ConfigError, match="data_sha256") as err:
        cached_reference(str(folder), extractor, cache)
    assert err.value.key == "metric.reference"
    assert "\n" not in str(err.value)


def test_a_cache_file_of_another_dimension_is_refused(folder, tmp_path):
    cache = tmp_path / "cache"
    cached_reference(str(folder), tiny_extractor("a" * 64, feature_dim=8), cache)
    with pytest.raises(ConfigError, match="8-d, but tiny gives 4-d") as err:
        cached_reference(str(folder), tiny_extractor("a" * 64, feature_dim=4), cache)
    assert err.value.key == "metric.reference"


def test_a_broken_cache_file_is_refused(folder, tmp_path):
    cache, extractor = tmp_path / "cache", tiny_extractor("a" * 64)
    cached_reference(str(folder), extractor, cache)
    only_cache_file(cache).write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="delete"):
        cached_reference(str(folder), extractor, cache)


class FakeInception(torch.nn.Module):
    """Stands in for InceptionV3 where only its name and feature dimension matter."""

    name, sha256, img_channels, precision = "inception-v3-compat", "c" * 64, 3, "fp32"

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features


def test_published_statistics_of_the_wrong_dimension_are_refused(tmp_path):
    path = tmp_path / "stats.npz"
    np.savez(path, mu=np.zeros(8), sigma=np.eye(8))
    sums = published_statistics(path, FakeInception(8), count=100)
    assert sums.count == 100 and torch.allclose(sums.outer, 99 * torch.eye(8).double())
    with pytest.raises(ConfigError, match="holds mu of 8") as err:
        cached_reference(str(path), FakeInception(16), tmp_path / "cache")
    assert err.value.key == "metric.reference"
    with pytest.raises(ConfigError, match=r"features cannot be compared with; give reference"):
        published_statistics(path, tiny_extractor("a" * 64))
    half = FakeInception(8)
    half.precision = "bf16"  # published statistics are of fp32 features
    with pytest.raises(ConfigError, match=r"precision\.features=fp32") as err:
        published_statistics(path, half, count=100)
    assert err.value.key == "precision.features"


def test_unknown_references_are_refused_with_the_choices(tmp_path):
    text = tmp_path / "refs.txt"
    text.write_text("x")
    for name in (str(text), str(tmp_path / "missing")):
        with pytest.raises(ConfigError, match="zip") as err:
            reference_images(name)
        assert err.value.key == "metric.reference"
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("README.txt", "no images")
    with pytest.raises(ConfigError, match="no PNG/JPEG"):
        reference_images(str(empty))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="zip"):
        cached_reference(str(broken), tiny_extractor("a" * 64), tmp_path / "cache")


def test_images_of_several_sizes_are_refused(folder):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "small.png")
    with pytest.raises(ConfigError, match="one size"):
        reference_images(str(folder))


# ---------------------------------------------------------------------------------------------
# prompt sets: the images a CSV or JSONL file lists, as the reference


def write_prompt_set(folder: Path, path: Path, names: list[str]) -> Path:
    """A CSV (or, by suffix, JSONL) prompt set listing ``folder``'s images by relative path."""
    rel = [(folder / n).relative_to(path.parent).as_posix() for n in names]
    if path.suffix == ".csv":
        path.write_text("caption,image\n" + "".join(f"caption {i},{r}\n"
                                                    for i, r in enumerate(rel)))
    else:
        path.write_text("".join(json.dumps({"caption": f"caption {i}", "image": r}) + "\n"
                                for i, r in enumerate(rel)))
    return path


def test_a_prompt_set_gives_the_images_and_sums_of_the_same_folder(folder, tmp_path):
    names = sorted(p.name for p in folder.iterdir())  # the folder's order
    extractor, cache = tiny_extractor("a" * 64), tmp_path / "cache"
    expected = cached_reference(str(folder), extractor, cache)
    for suffix in (".csv", ".jsonl"):
        listed = write_prompt_set(folder, tmp_path / f"coco{suffix}", names)
        assert torch.equal(reference_images(str(listed)), reference_images(str(folder)))
        assert same_sums(cached_reference(str(listed), extractor, cache), expected)
        features = reference.cached_features(str(listed), extractor, cache)
        assert features.shape == (8, 8)
    assert len(list(cache.glob("*.safetensors"))) == 5  # folder, csv, jsonl and 2 features


def test_each_listed_image_counts_once_in_the_order_of_its_first_row(folder, tmp_path):
    names = sorted(p.name for p in folder.iterdir())
    listed = write_prompt_set(folder, tmp_path / "five.csv", [names[1], names[0], names[1]])
    images = reference_images(str(listed))
    whole = reference_images(str(folder))
    assert images.shape[0] == 2
    assert torch.equal(images, whole[[1, 0]])


def test_a_listed_prompt_set_is_cached_by_its_images_bytes_and_order(folder, tmp_path,
                                                                     monkeypatch):
    names = sorted(p.name for p in folder.iterdir())
    listed = write_prompt_set(folder, tmp_path / "coco.csv", names)
    extractor, cache = tiny_extractor("a" * 64), tmp_path / "cache"
    key = reference._data_sha256(str(listed), None)
    first = cached_reference(str(listed), extractor, cache)
    # new captions, the same images in the same order: the same key, read from the cache
    listed.write_text(listed.read_text().replace("caption ", "a photo "))
    assert reference._data_sha256(str(listed), None) == key
    with monkeypatch.context() as patched:
        patched.setattr(reference, "reference_images", lambda name: pytest.fail("decoded"))
        assert same_sums(cached_reference(str(listed), extractor, cache), first)
    # rows reordered: another key
    write_prompt_set(folder, listed, names[::-1])
    reordered = reference._data_sha256(str(listed), None)
    assert reordered != key
    # one image's bytes changed: another key, and statistics computed again
    write_prompt_set(folder, listed, names)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / names[3])
    changed = reference._data_sha256(str(listed), None)
    assert changed not in (key, reordered)
    assert not same_sums(cached_reference(str(listed), extractor, cache), first)
    assert len(list(cache.glob("*.safetensors"))) == 2


def test_a_prompt_set_reference_is_refused_without_images_or_with_a_bad_one(folder, tmp_path):
    captions = tmp_path / "captions.csv"
    captions.write_text("caption\na cat\n")
    extractor, cache = tiny_extractor("a" * 64), tmp_path / "cache"
    for call in (lambda: reference_images(str(captions)),
                 lambda: cached_reference(str(captions), extractor, cache)):
        with pytest.raises(ConfigError, match="prompt set without images") as err:
            call()
        assert err.value.key == "metric.reference"
    (folder / "broken.png").write_bytes(b"not a png")
    listed = write_prompt_set(folder, tmp_path / "broken.csv", ["img0.png", "broken.png"])
    with pytest.raises(ConfigError, match=r"broken\.png is not a readable image") as err:
        cached_reference(str(listed), extractor, cache)
    assert err.value.key == "metric.reference" and err.value.value == str(listed)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(small)
    listed = write_prompt_set(folder, tmp_path / "sizes.jsonl", ["img0.png", "../small.png"])
    with pytest.raises(ConfigError, match="one size"):
        reference_images(str(listed))
