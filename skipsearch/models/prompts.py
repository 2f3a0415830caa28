"""Prompt sets: the captions a text-to-image model draws, optionally paired with real images.

A prompt set is a file, read by its extension (torch-free):

- ``.txt``: one prompt a line; blank lines are skipped. No images.
- ``.csv``: a header row holding a ``caption`` column and, optionally, an ``image`` column (a
  path to the real image the caption describes); other columns (``image_id``, ...) are ignored.
  UTF-8, an Excel byte-order mark allowed; blank rows are skipped.
- ``.jsonl``: one JSON object a line, ``{"caption": "...", "image": "..."}``, ``image``
  optional; blank lines are skipped.

Captions are stripped of surrounding whitespace and must not be empty. Relative image paths are
resolved against the folder of the prompt-set file. Either every row names an image or none
does; every image named must exist. Image k of a model is drawn with caption ``k % n``
(``PromptSet.prompt_for``). As ``metric.reference``, a prompt set with images makes the reference
its images, each distinct image once, in the order of its first row
(``PromptSet.distinct_images``).

Every bad input is a one-line ``ConfigError`` naming the key the file was given under.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..configuration.errors import ConfigError

#: prompt-set formats by file extension
PROMPT_SET_SUFFIXES = {".txt": "text", ".csv": "csv", ".jsonl": "jsonl"}

FORMATS = ("a .txt file with one prompt a line, a .csv file with a 'caption' column (and "
           "optionally 'image'), or a .jsonl file of {\"caption\": ..., \"image\": ...} objects")


@dataclass(frozen=True)
class PromptSet:
    """Captions in file order and, when the file lists them, the image of each (else None)."""

    source: Path
    captions: tuple[str, ...]
    images: tuple[Path, ...] | None = None

    def __len__(self) -> int:
        return len(self.captions)

    def prompt_for(self, k: int) -> str:
        """The caption image ``k`` is drawn with: ``captions[k % len(captions)]``."""
        return self.captions[int(k) % len(self.captions)]

    def distinct_images(self) -> tuple[Path, ...]:
        """The listed images, each once (by resolved path), in the order of its first row.

        COCO-style files pair an image with several captions; counting it once per caption
        would put exact duplicates in the reference, which zero the k-NN radii of
        precision/recall and bias KID.
        """
        if self.images is None:
            return ()
        seen: dict[Path, Path] = {}
        for image in self.images:
            seen.setdefault(image.resolve(), image)
        return tuple(seen.values())


def is_prompt_set(path: str | Path) -> bool:
    """Whether ``path``'s extension is a prompt-set format's (the file need not exist)."""
    return Path(path).suffix.lower() in PROMPT_SET_SUFFIXES


def read_prompt_set(path: str | Path, key: str = "model.prompts",
                    check_images: bool = True) -> PromptSet:
    """The prompt set of ``path`` (format by extension), checked; bad input is a ConfigError.

    With ``check_images`` every listed image must be a file.
    """
    path = Path(path)
    kind = PROMPT_SET_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        suffix = f"extension '{path.suffix}'" if path.suffix else "file without extension"
        raise ConfigError(key, str(path), f"a prompt set of unknown format ({suffix}); "
                          f"give {FORMATS}")
    if not path.is_file():
        raise ConfigError(key, str(path), f"no such file; give {FORMATS}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(key, str(path), f"unreadable ({err}); give a UTF-8 text file") from None
    if kind == "text":
        captions = [line.strip() for line in text.splitlines() if line.strip()]
        if not captions:
            raise ConfigError(key, str(path), "the file holds no prompt; write one prompt a line")
        return PromptSet(path, tuple(captions))
    rows = _csv_rows(text, path, key) if kind == "csv" else _jsonl_rows(text, path, key)
    return _paired(rows, path, key, check_images)


#: one row of a CSV or JSONL prompt set: (line number, caption, image or None)
Row = tuple[int, str, str | None]


def _csv_rows(text: str, path: Path, key: str) -> list[Row]:
    """The rows of a CSV prompt set (line numbers count the header as line 1)."""
    # strict: a quote left open is an error, not one caption running to the end of the file
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
        if not header:
            raise ConfigError(key, str(path), "the file holds no rows; write a header row with "
                              "a 'caption' column, then one row a prompt")
        columns = [c.strip() for c in header]
        if "caption" not in columns:
            raise ConfigError(key, str(path), f"the header names {columns}, no 'caption' "
                              "column; name the prompts' column caption (and images' image)")
        reader.fieldnames = columns
        rows = []
        for record in reader:
            if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
                continue  # a blank row
            caption, image = record.get("caption"), record.get("image")
            rows.append((reader.line_num, caption, image or None))
    except csv.Error as err:
        raise ConfigError(key, str(path), f"line {reader.reader.line_num} is not valid CSV "
                          f"({err}); quote fields that hold commas or quotes") from None
    return rows


def _jsonl_rows(text: str, path: Path, key: str) -> list[Row]:
    """The rows of a JSONL prompt set."""
    rows = []
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON holds U+2028
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(key, str(path), f"line {number} is not JSON ({err.msg}); write "
                              "one object a line, e.g. {\"caption\": \"a cat\"}") from None
        if not isinstance(record, dict):
            raise ConfigError(key, str(path), f"line {number} is a JSON "
                              f"{type(record).__name__}, not an object with a 'caption'")
        image = record.get("image")
        if image is not None and not isinstance(image, str):
            raise ConfigError(key, str(path), f"line {number}: 'image' is "
                              f"{type(image).__name__}; give a path as a string")
        caption = record.get("caption")
        if caption is not None and not isinstance(caption, str):
            raise ConfigError(key, str(path), f"line {number}: 'caption' is "
                              f"{type(caption).__name__}; give the prompt as a string")
        rows.append((number, caption, image or None))
    return rows


def _paired(rows: list[Row], path: Path, key: str, check_images: bool) -> PromptSet:
    """Captions and images of checked rows: each with a caption, all or none with an image."""
    if not rows:
        raise ConfigError(key, str(path), "the file holds no rows; write one row a prompt")
    captions = []
    for line, caption, _ in rows:
        if caption is None:
            raise ConfigError(key, str(path), f"line {line} has no caption; give every row one")
        if not caption.strip():
            raise ConfigError(key, str(path), f"line {line} has an empty caption; give every "
                              "row a prompt")
        captions.append(caption.strip())
    with_image = [line for line, _, image in rows if image is not None and image.strip()]
    if not with_image:
        return PromptSet(path, tuple(captions))
    if len(with_image) < len(rows):
        without = next(line for line, _, image in rows if image is None or not image.strip())
        raise ConfigError(key, str(path), f"line {with_image[0]} names an image but line "
                          f"{without} does not; give every row an image, or none")
    images = []
    checked: set[Path] = set()
    for line, _, image in rows:
        file = path.parent / Path(image.strip()).expanduser()
        if check_images and file not in checked:
            if not file.is_file():
                raise ConfigError(key, str(path), f"line {line} names image {image.strip()!r}, "
                                  f"but {file} does not exist; relative paths start at "
                                  f"{path.parent}")
            checked.add(file)
        images.append(file)
    return PromptSet(path, tuple(captions), tuple(images))


def listed_images(path: str | Path, key: str = "metric.reference") -> tuple[Path, ...]:
    """The reference images of a prompt set: its distinct images in first-row order.

    A prompt set that lists no images is a ConfigError naming ``key``.
    """
    prompt_set = read_prompt_set(path, key)
    if prompt_set.images is None:
        raise ConfigError(key, str(path), "is a prompt set without images, so it holds no "
                          "reference; list each caption's image (an 'image' column of a .csv, "
                          "an \"image\" field of a .jsonl) or give images: a folder, zip or npz")
    return prompt_set.distinct_images()


def read_prompts(path: str | Path, key: str = "model.prompts") -> list[str]:
    """The captions of a prompt set of any format, in file order (its images unchecked)."""
    return list(read_prompt_set(path, key, check_images=False).captions)
