"""Weights on disk: safetensors with the architecture config as metadata; content hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import ConfigError


def save_weights(module: nn.Module, path: Path, config: dict, **meta: str) -> None:
    """Write ``module``'s state dict as safetensors, with ``config`` as JSON metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(config), **meta})


def read_weights(path: Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; ConfigError naming ``key`` if unreadable."""
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file; give the path of a .safetensors file")
    try:

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(key, str(path), f"not a readable safetensors file ({err})") from None


def check_safetensors(path: Path, key: str) -> None:
    """ConfigError naming ``key`` unless ``path`` has a readable safetensors header."""
    try:
        with safe_open(str(path), framework="pt") as f:
            f.metadata()
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(key, str(path), f"not a readable safetensors file ({err}); give a "
                          ".safetensors file written by skipsearch") from None


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
