"""Weights on disk: safetensors with the architecture config as metadata; content hashes.

A file is checked before it is used: its header (tensor names, shapes, data offsets) and its
metadata are read without torch, so a wrong file is one line naming the config key before
torch loads; the tensors are then compared with the network built from the file's config
before they are loaded into it.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # torch loads when a file is written or its tensors are read
    from torch import nn

# Bytes per element of each safetensors dtype.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2,
               "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
MAX_HEADER = 100 * 2**20  # the most header bytes the safetensors library reads
UNREADABLE = "give a .safetensors file written by skipsearch"


@dataclass(frozen=True)
class WeightsHeader:
    """A safetensors file's header: each tensor's shape, in file order, and the metadata."""

    shapes: Mapping[str, tuple[int, ...]]
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class NetworkFile:
    """What a weights file of one bundled network holds, known without torch.

    ``roots``: the first part of every tensor name; ``fields``: the config's fields, each a
    positive integer (``lists``: a non-empty list of them); ``numbers``: metadata entries that
    must be finite numbers > 0 when present.
    """

    name: str
    key: str
    roots: tuple[str, ...]
    fields: tuple[str, ...]
    lists: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()


DENOISER_FILE = NetworkFile(
    "the digits denoiser", "model.weights",
    roots=("map_noise", "map_label", "conv_in", "enc", "mid", "dec", "ups", "norm_out",
           "conv_out"),
    fields=("img_resolution", "img_channels", "label_dim", "model_channels", "channel_mult",
            "blocks_per_level", "emb_dim"),
    lists=("channel_mult",), numbers=("sigma_data",))
CLASSIFIER_FILE = NetworkFile(
    "the digits classifier", "metric.weights", roots=("convs", "penultimate", "head"),
    fields=("img_resolution", "img_channels", "width", "feature_dim", "num_classes"))
AUTOENCODER_FILE = NetworkFile(
    "the digits autoencoder", "metric.autoencoder_weights", roots=("encoder", "decoder"),
    fields=("img_resolution", "img_channels", "width", "feature_dim"))
NETWORK_FILES = (DENOISER_FILE, CLASSIFIER_FILE, AUTOENCODER_FILE)


def save_weights(module: nn.Module, path: Path, config: dict, **meta: str) -> None:
    """Write ``module``'s state dict as safetensors, with ``config`` as JSON metadata."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(config), **meta})


def retrain(key: str) -> str:
    """The fix for a weights file skipsearch cannot use."""
    return f"retrain with skipsearch train-toy, or set {key}=null for the bundled file"


def is_count(value: object) -> bool:
    """An integer >= 0 (JSON's booleans are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def raw_header(path: Path) -> tuple[dict, int]:
    """The header JSON of a safetensors file and the size of its data; ValueError if unusable.

    The format: 8 bytes little-endian header length, the header (JSON), then the data.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        start = f.read(8)
        if len(start) < 8:
            raise ValueError(f"{size} bytes, shorter than a header")
        (length,) = struct.unpack("<Q", start)
        if not 2 <= length <= min(MAX_HEADER, size - 8):
            raise ValueError(f"a header of {length} bytes does not fit a file of {size} bytes")
        header = json.loads(f.read(length).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, size - 8 - length


def entry_shape(name: str, entry: object, data_size: int) -> tuple[int, ...]:
    """The shape of one header entry, whose bytes must lie in the data; ValueError if not."""
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPE_BYTES:
        raise ValueError(f"tensor {name} has no known dtype")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(is_count(n) for n in shape):
        raise ValueError(f"tensor {name} has shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(is_count, offsets))
            and offsets[0] <= offsets[1] <= data_size):
        raise ValueError(f"tensor {name}'s data lies outside the file (is it cut short?)")
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[entry["dtype"]]:
        raise ValueError(f"tensor {name} has {offsets[1] - offsets[0]} bytes for shape {shape}")
    return tuple(shape)


def parse_header(header: dict, data_size: int) -> WeightsHeader:
    """Shapes and metadata of a parsed header; ValueError where it breaks the format."""
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("__metadata__ is not a mapping of strings")
    shapes = {name: entry_shape(name, entry, data_size) for name, entry in header.items()}
    return WeightsHeader(shapes, metadata)


def read_header(path: Path, key: str) -> WeightsHeader:
    """The header of the safetensors file at ``path``, read without torch; ConfigError if bad."""
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file; give the path of a .safetensors file")
    try:
        return parse_header(*raw_header(path))
    except (OSError, ValueError) as err:  # JSON and UTF-8 errors are ValueErrors
        raise ConfigError(key, str(path), f"not a readable safetensors file ({err}); "
                          f"{UNREADABLE}") from None


def roots_text(names: Mapping[str, object]) -> str:
    """The first parts of tensor names, up to three, as ``convs..., head...``."""
    roots = list(dict.fromkeys(name.split(".")[0] for name in names))
    return ", ".join([f"{root}..." for root in roots[:3]] + ["..."] * (len(roots) > 3))


def tensors_problem(shapes: Mapping[str, tuple[int, ...]], network: NetworkFile) -> str | None:
    """Why tensors of these names are not ``network``'s (another network's?); None if they are."""
    if not shapes:
        return f"holds no tensors; {retrain(network.key)}"
    foreign = [name for name in shapes if name.split(".")[0] not in network.roots]
    if not foreign:
        return None
    for other in NETWORK_FILES:
        if other is not network and all(n.split(".")[0] in other.roots for n in shapes):
            return (f"looks like {other.name}'s weights (tensors {roots_text(shapes)}), not "
                    f"{network.name}'s; give {network.name}'s file as {network.key} "
                    f"({other.name}'s belongs in {other.key})")
    return f"tensor {foreign[0]} is not part of {network.name}; {retrain(network.key)}"


def field_problem(config: Mapping, network: NetworkFile) -> str | None:
    """Why the config's fields are not ``network``'s; None if they are."""
    missing = [f for f in network.fields if f not in config]
    if missing:
        return f"metadata 'config' lacks {missing[0]} ({network.name} needs " \
               f"{', '.join(network.fields)})"
    unknown = [f for f in config if f not in network.fields]
    if unknown:
        return f"metadata 'config' has {unknown[0]!r}, which {network.name} does not take"
    for field in network.fields:
        value = config[field]
        if field in network.lists:
            if not (isinstance(value, list) and value and all(positive(v) for v in value)):
                return (f"metadata 'config' has {field}={value!r}; it must be a non-empty "
                        "list of positive integers")
        elif not positive(value):
            return f"metadata 'config' has {field}={value!r}; it must be a positive integer"
    return None


def positive(value: object) -> bool:
    """An integer >= 1 (JSON's booleans are not)."""
    return is_count(value) and value >= 1


def metadata_problem(metadata: Mapping[str, str], network: NetworkFile) -> str | None:
    """Why a file's metadata does not describe one of ``network``; None if it does."""
    if "config" not in metadata:
        return f"no metadata 'config': not written by skipsearch's save_weights; " \
               f"{retrain(network.key)}"
    try:
        config = json.loads(metadata["config"])
    except ValueError:
        return f"metadata 'config' is not JSON ({metadata['config'][:40]!r}); " \
               f"{retrain(network.key)}"
    problem = ("metadata 'config' is not a JSON object" if not isinstance(config, dict)
               else field_problem(config, network) or numbers_problem(metadata, network))
    return None if problem is None else f"{problem}; {retrain(network.key)}"


def numbers_problem(metadata: Mapping[str, str], network: NetworkFile) -> str | None:
    """Why a numeric metadata entry of ``network`` is unusable; None if each is fine."""
    for name in network.numbers:
        value = metadata.get(name, "1")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            return f"metadata {name!r} is {value!r}; it must be a finite number > 0"
    return None


def check_network_file(path: Path, key: str, network: NetworkFile) -> tuple[dict, WeightsHeader]:
    """The config of a weights file of ``network`` and its header, checked without torch.

    ConfigError naming ``key`` and the file at the first problem: an unreadable header,
    another network's tensors, missing or malformed metadata.
    """
    header = read_header(path, key)
    problem = (tensors_problem(header.shapes, network)
               or metadata_problem(header.metadata, network))
    if problem is not None:
        raise ConfigError(key, str(path), problem)
    return json.loads(header.metadata["config"]), header


def state_problem(have: Mapping[str, tuple[int, ...]], want: Mapping[str, tuple[int, ...]],
                  key: str) -> str | None:
    """The first difference between a file's tensors and a network's; None if there is none."""
    built = "the network built from the file's config"
    for name, shape in want.items():
        if name not in have:
            return f"tensor {name} is missing ({built} has {len(want)} tensors, the file " \
                   f"{len(have)}); {retrain(key)}"
        if have[name] != shape:
            return f"tensor {name} has shape {list(have[name])}, {built} wants " \
                   f"{list(shape)}; {retrain(key)}"
    extra = [name for name in have if name not in want]
    if extra:
        return f"tensor {extra[0]} is not in {built}; {retrain(key)}"
    return None


def load_checked(build: Callable[[], nn.Module], path: Path, key: str,
                 header: WeightsHeader) -> nn.Module:
    """``build()`` with the file's tensors, once their names and shapes are the network's.

    The network is first built on the meta device (no memory), so a config asking for a huge
    network costs nothing before the file is refused.
    """
    import torch

    try:
        with torch.device("meta"):
            want = {n: tuple(t.shape) for n, t in build().state_dict().items()}
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(key, str(path), f"its config builds no network ({err}); "
                          f"{retrain(key)}") from None
    problem = state_problem(header.shapes, want, key)
    if problem is not None:
        raise ConfigError(key, str(path), problem)
    module = build()
    module.load_state_dict(load_tensors(path, key))
    return module


def load_tensors(path: Path, key: str) -> dict:
    """The tensors of a safetensors file on the CPU; ConfigError naming ``key`` if unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(key, str(path), f"not a readable safetensors file ({err}); "
                          f"{UNREADABLE}") from None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()
