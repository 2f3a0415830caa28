"""Reading published state dicts with ``weights_only=True`` and loading them strictly."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..configuration.errors import ConfigError


def read_state_dict(path: str | Path, key: str = "model.path") -> dict:
    """The dict saved in ``path`` (tensors, numbers, strings only: ``weights_only=True``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            lines = [line for line in str(err).splitlines() if line.strip()]
            reason = lines[-2] if len(lines) > 1 else (lines or [""])[0]
            raise ConfigError(key, str(path), f"not a readable torch checkpoint "
                              f"({reason.strip()[:120]}); give the published "
                              ".pt/.pth/.ckpt file") from None
        raise ConfigError(key, str(path), "holds Python objects besides tensors, which "
                          "weights_only=True refuses (unpickling them would run code); give "
                          "the published state dict file") from None
    except Exception as err:  # garbage makes torch.load raise almost anything
        reason = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else ""
        raise ConfigError(key, str(path), f"not a readable torch checkpoint "
                          f"({type(err).__name__}: {reason[:120]}); "
                          "give the published .pt/.pth/.ckpt file") from None
    if not isinstance(obj, Mapping):
        raise ConfigError(key, str(path), f"holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def with_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix``, with it removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def require(state: Mapping[str, torch.Tensor], name: str, path: str | Path,
            what: str, key: str = "model.path") -> torch.Tensor:
    """``state[name]``; ConfigError saying the file is not a ``what`` checkpoint otherwise."""
    if name not in state or not isinstance(state[name], torch.Tensor):
        raise ConfigError(key, str(path), f"has no tensor {name!r}: not a {what} checkpoint")
    return state[name]


def load_strict(net: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path,
                settings: str, key: str = "model.path") -> nn.Module:
    """``net.load_state_dict(state, strict=True)``; a mismatch names keys and settings to check."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"{label} {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected),
                                      ("shape", shapes)) if items]
        raise ConfigError(key, str(path), f"does not fit the network of {settings} "
                          f"({'; '.join(parts)}); check those settings")
    net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return net.eval().requires_grad_(False)
