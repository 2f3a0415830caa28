"""Prompt sets: text, CSV and JSONL files, their images, every refusal, the sdxl_coco sweep."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from skipsearch.configuration.errors import ConfigError
from skipsearch.models.prompts import (
    PromptSet,
    is_prompt_set,
    listed_images,
    read_prompt_set,
    read_prompts,
)

CAPTIONS = ["a red cat", "two dogs, on a sofa", 'a "boat" at sea']


def write_images(folder: Path, names: list[str]) -> None:
    """Tiny PNG files under ``folder`` (created with its parents)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(folder / name)


def write_csv(path: Path, rows: list[str]) -> Path:
    """A CSV file of the given lines."""
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[object]) -> Path:
    """A JSONL file, one record a line (strings are written as they are)."""
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records)
                    + "\n", encoding="utf-8")
    return path


def refusal(path: Path, key: str = "model.prompts") -> ConfigError:
    """The ConfigError reading ``path`` raises; it is one line naming the key and the file."""
    with pytest.raises(ConfigError) as err:
        read_prompt_set(path, key)
    assert err.value.key == key and err.value.value == str(path)
    assert "\n" not in str(err.value)
    return err.value


def test_a_text_file_holds_one_prompt_a_line(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("  a red cat \n\ntwo dogs, on a sofa\n" + CAPTIONS[2] + "\n\n")
    prompts = read_prompt_set(path)
    assert prompts == PromptSet(path, tuple(CAPTIONS))
    assert prompts.images is None and prompts.distinct_images() == ()
    assert read_prompts(path) == CAPTIONS


def test_a_csv_file_pairs_captions_with_images_relative_to_its_folder(tmp_path):
    write_images(tmp_path / "data" / "images", ["a.png", "b.png"])
    absolute = tmp_path / "elsewhere" / "c.png"
    write_images(absolute.parent, ["c.png"])
    path = write_csv(tmp_path / "data" / "coco.csv", [
        "image_id,caption,image",
        '42,a red cat,images/a.png',
        '43,"two dogs, on a sofa",images/b.png',
        f'44,"a ""boat"" at sea",{absolute}',
    ])
    prompts = read_prompt_set(path)
    assert list(prompts.captions) == CAPTIONS
    assert prompts.images == (tmp_path / "data" / "images" / "a.png",
                              tmp_path / "data" / "images" / "b.png", absolute)
    assert read_prompts(path) == CAPTIONS


def test_a_csv_file_may_hold_captions_only_a_bom_and_blank_rows(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text("\ufeffcaption\n a red cat \n\n\"two dogs, on a sofa\"\n", encoding="utf-8")
    prompts = read_prompt_set(path)
    assert prompts.captions == ("a red cat", "two dogs, on a sofa") and prompts.images is None


def test_a_jsonl_file_holds_one_object_a_line(tmp_path):
    write_images(tmp_path / "images", ["a.png", "b.png", "c.png"])
    path = write_jsonl(tmp_path / "coco.jsonl", [
        {"caption": c, "image": f"images/{n}", "id": i}
        for i, (c, n) in enumerate(zip(CAPTIONS, ["a.png", "b.png", "c.png"], strict=True))])
    path.write_text(path.read_text() + "\n\n")  # blank lines are skipped
    prompts = read_prompt_set(path)
    assert list(prompts.captions) == CAPTIONS
    assert prompts.images == tuple(tmp_path / "images" / n for n in ("a.png", "b.png", "c.png"))
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"caption": c} for c in CAPTIONS])
    assert read_prompt_set(plain).images is None and read_prompts(plain) == CAPTIONS


def test_a_caption_may_hold_line_separators(tmp_path):
    path = write_jsonl(tmp_path / "odd.jsonl", [
        json.dumps({"caption": "a cat\u2028on a mat"}, ensure_ascii=False), {"caption": "x"}])
    assert read_prompts(path) == ["a cat\u2028on a mat", "x"]


def test_image_k_uses_prompt_k_mod_n(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"caption": c} for c in CAPTIONS])
    prompts = read_prompt_set(path)
    assert [prompts.prompt_for(k) for k in range(7)] == [CAPTIONS[k % 3] for k in range(7)]
    assert len(prompts) == 3


def test_text_to_image_reads_every_format_through_prompts(tmp_path):
    pytest.importorskip("torch")
    from skipsearch.models.text_to_image import read_prompts as model_prompts

    text = tmp_path / "p.txt"
    text.write_text("\n".join(CAPTIONS))
    csv = write_csv(tmp_path / "p.csv", ["caption", *(f'"{c}"'.replace('"boat"', '""boat""')
                                                      for c in CAPTIONS)])
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"caption": c} for c in CAPTIONS])
    for path in (text, csv, jsonl):
        assert model_prompts(path) == CAPTIONS
    with pytest.raises(ConfigError) as err:
        model_prompts(tmp_path / "missing.txt")
    assert err.value.key == "model.prompts"


def test_images_repeat_in_rows_but_count_once_as_reference(tmp_path):
    write_images(tmp_path / "images", ["a.png", "b.png"])
    path = write_csv(tmp_path / "five.csv", [
        "caption,image", "one,images/b.png", "two,images/a.png", "three,./images/b.png",
        "four,images/a.png"])
    prompts = read_prompt_set(path)
    assert len(prompts.images) == 4
    assert prompts.distinct_images() == (tmp_path / "images" / "b.png",
                                         tmp_path / "images" / "a.png")
    assert listed_images(path) == prompts.distinct_images()


def test_missing_files_and_unknown_extensions_are_refused(tmp_path):
    assert "no such file" in refusal(tmp_path / "missing.csv").fix
    for name in ("prompts.json", "prompts"):
        path = tmp_path / name
        path.write_text("a cat\n")
        assert "unknown format" in refusal(path).fix and ".jsonl" in refusal(path).fix
    assert is_prompt_set("x.CSV") and is_prompt_set("x.jsonl") and not is_prompt_set("x.zip")


@pytest.mark.parametrize("name, text, why", [
    ("empty.txt", "\n \n", "holds no prompt"),
    ("empty.csv", "", "holds no rows"),
    ("header.csv", "caption,image\n", "holds no rows"),
    ("empty.jsonl", "\n\n", "holds no rows"),
    ("columns.csv", "text,image\na cat,a.png\n", "no 'caption' column"),
    ("short.csv", "image,caption\na.png,a cat\nb.png\n", "line 3 has no caption"),
    ("blank.csv", "caption,image\na cat,a.png\n  \t,b.png\n", "line 3 has an empty caption"),
    ("blank.jsonl", '{"caption": "a cat"}\n{"caption": "  "}\n', "line 2 has an empty caption"),
    ("none.jsonl", '{"caption": "a cat"}\n{"image": "a.png"}\n', "line 2 has no caption"),
    ("broken.jsonl", '{"caption": "a cat"}\n\n{"caption": "x"\n', "line 3 is not JSON"),
    ("list.jsonl", '["a cat"]\n', "line 1 is a JSON list"),
    ("number.jsonl", '{"caption": 3}\n', "'caption' is int"),
    ("path.jsonl", '{"caption": "a", "image": 3}\n', "'image' is int"),
    ("open.csv", 'caption\na dog\n"a cat\nx\n', "is not valid CSV (unexpected end"),
    ("quote.csv", 'caption\na dog\n"a" cat\n', "line 3 is not valid CSV"),
])
def test_bad_rows_are_refused_naming_the_line(tmp_path, name, text, why):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert why in refusal(path).fix


def test_rows_with_and_without_images_are_refused(tmp_path):
    write_images(tmp_path, ["a.png"])
    csv = write_csv(tmp_path / "mixed.csv", ["caption,image", "a cat,a.png", "a dog,",
                                             "a cow,a.png"])
    assert "line 2 names an image but line 3 does not" in refusal(csv).fix
    jsonl = write_jsonl(tmp_path / "mixed.jsonl", [{"caption": "a dog"},
                                                   {"caption": "a cat", "image": "a.png"}])
    assert "line 2 names an image but line 1 does not" in refusal(jsonl).fix


def test_a_listed_image_that_does_not_exist_is_refused_naming_the_row(tmp_path):
    write_images(tmp_path / "images", ["a.png"])
    path = write_csv(tmp_path / "coco.csv", ["caption,image", "a cat,images/a.png",
                                             "a dog,images/gone.png"])
    fix = refusal(path, "metric.reference").fix
    assert "line 3" in fix and "images/gone.png" in fix and str(tmp_path) in fix
    # the model reads only the captions, so it does not need the images
    assert read_prompts(path) == ["a cat", "a dog"]
    jsonl = write_jsonl(tmp_path / "coco.jsonl", [{"caption": "a", "image": "nope.png"}])
    assert "line 1" in refusal(jsonl).fix


def test_a_prompt_set_without_images_is_no_reference(tmp_path):
    for path in (write_csv(tmp_path / "p.csv", ["caption", "a cat"]),
                 write_jsonl(tmp_path / "p.jsonl", [{"caption": "a cat"}])):
        with pytest.raises(ConfigError, match="prompt set without images") as err:
            listed_images(path)
        assert err.value.key == "metric.reference"


# ---------------------------------------------------------------------------------------------
# the ready sweep sdxl_coco: prompts and reference from one CSV


def coco_overrides(tmp_path: Path) -> list[str]:
    """A tiny COCO-style CSV with its images, and stand-in network files."""
    write_images(tmp_path / "val2014", ["1.png", "2.png", "3.png"])
    csv = write_csv(tmp_path / "coco.csv", [
        "caption,image", *(f"{c.replace(',', '')},val2014/{i + 1}.png"
                           for i, c in enumerate(CAPTIONS))])
    inception = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    inception.write_bytes(b"stand-in")
    (tmp_path / "clip").mkdir()
    return [f"model.path={tmp_path}", f"model.prompts={csv}", f"metric.reference={csv}",
            f"metric.inception_weights={inception}", f"metric.clip_weights={tmp_path / 'clip'}"]


def compose_sdxl_coco(overrides: list[str], tmp_path: Path):
    """The sweep composed; where conf/model/sdxl.yaml is not yet there, over a stand-in."""
    from skipsearch.cli import compose_config, search_path
    from skipsearch.configuration.paths import CONF_DIR

    if (Path(CONF_DIR) / "model" / "sdxl.yaml").is_file():
        return compose_config(["sweeps=sdxl_coco", *overrides])
    stand_in = tmp_path / "conf"
    (stand_in / "model").mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(CONF_DIR) / "model" / "stable_diffusion.yaml",
                stand_in / "model" / "sdxl.yaml")
    return compose_config([search_path([str(stand_in)]), "sweeps=sdxl_coco", *overrides])


def test_the_sdxl_coco_sweep_holds_the_conventional_sizes(tmp_path):
    from omegaconf import OmegaConf

    from skipsearch.metrics.settings import MetricSettings

    cfg = compose_sdxl_coco([], tmp_path)
    assert cfg.sampler.name == "dpmpp_2m" and cfg.metric.name == "fid"
    assert list(cfg.metric.confirm) == ["clip_score"]
    assert cfg.metric.n_samples == 2000 and cfg.metric.final_samples == 30000
    assert OmegaConf.is_missing(cfg.model, "path") and OmegaConf.is_missing(cfg.metric,
                                                                             "reference")
    for key in ("model.prompts", "metric.inception_weights", "metric.clip_weights"):
        assert OmegaConf.select(cfg, key) is None, key  # each given as an override
    overrides = coco_overrides(tmp_path)
    cfg = compose_sdxl_coco(overrides, tmp_path)
    settings = MetricSettings.from_config(cfg, confirming=True)
    assert settings.reference == str(tmp_path / "coco.csv")
    assert set(settings.files) == {"inception", "clip"}
    assert len(read_prompts(cfg.model.prompts)) == 3


def test_the_reference_check_refuses_a_prompt_set_without_images(tmp_path):
    from skipsearch.metrics.settings import MetricSettings

    overrides = coco_overrides(tmp_path)
    captions = write_csv(tmp_path / "captions.csv", ["caption", "a cat"])
    text = tmp_path / "captions.txt"
    text.write_text("a cat\n")
    for reference in (captions, text):
        cfg = compose_sdxl_coco([*overrides, f"metric.reference={reference}"], tmp_path)
        with pytest.raises(ConfigError, match="prompt set without images") as err:
            MetricSettings.from_config(cfg, confirming=True)
        assert err.value.key == "metric.reference" and "\n" not in str(err.value)
    (tmp_path / "val2014" / "2.png").unlink()
    cfg = compose_sdxl_coco(overrides, tmp_path)
    with pytest.raises(ConfigError, match="line 3 names image") as err:
        MetricSettings.from_config(cfg, confirming=True)
    assert err.value.key == "metric.reference"


def test_a_bad_prompt_set_is_one_line_before_the_model_loads(tmp_path):
    from tests.conftest import run_cli

    bad = tmp_path / "prompts.csv"
    bad.write_text("caption,image\n,a.png\n")  # an empty caption
    result = run_cli("sample", "model=stable_diffusion", f"model.path={tmp_path}",
                     f"model.prompts={bad}", "sample.score=false", f"out_dir={tmp_path / 'o'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("skipsearch: error: model.prompts")
    assert not (tmp_path / "o").exists()
