"""NVlabs EDM checkpoints (``network-snapshot-*.pkl``) without the EDM repository installed.

EDM pickles its networks in ``torch_utils.persistence`` format: each network object is stored as
``_reconstruct_persistent_obj(meta)`` where ``meta`` carries the source code of the module that
defined its class. Loading therefore runs that code, so it needs ``model.trust_pickle=true``.
The loader supplies minimal stand-ins for ``torch_utils`` and ``dnnlib`` while it unpickles, and
finds the skips by name and structure (``enc``/``dec`` module dicts, blocks with ``in_channels``),
never by isinstance, because every class is re-created from the embedded source.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import pickle
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..skips import SkipPoint
from .denoiser import Denoiser

PERSISTENCE_VERSION = 6
_ALLOWED_PREFIXES = ("torch", "collections", "numpy", "copyreg", "_codecs")
_BLOCK_NAME = re.compile(r"^(\d+)x(\d+)_")


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value


def _persistent_class(orig_class: type) -> type:
    """Stand-in for ``persistence.persistent_class``: the class itself, unchanged."""
    return orig_class


def _module_from_source(source: str) -> types.ModuleType:
    """Execute embedded module source once per content hash (the code runs: trusted files only)."""
    name = "_skipsearch_edm_" + hashlib.sha256(source.encode()).hexdigest()[:16]
    if name not in sys.modules:
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return sys.modules[name]


def _reconstruct_persistent_obj(meta: dict):
    """Re-create one persistent object from its ``meta`` (type, version, module_src, state)."""
    if meta.get("type") != "class" or meta.get("version") != PERSISTENCE_VERSION:
        raise pickle.UnpicklingError(f"unsupported EDM persistence record "
                                     f"(type {meta.get('type')}, version {meta.get('version')})")
    cls = getattr(_module_from_source(meta["module_src"]), meta["class_name"])
    obj = cls.__new__(cls)
    state = meta["state"]
    setstate = getattr(obj, "__setstate__", None)
    if callable(setstate):
        setstate(state)
    else:
        obj.__dict__.update(state)
    return obj


@contextlib.contextmanager
def _edm_stand_ins() -> Iterator[None]:
    """Make ``torch_utils.persistence``, ``torch_utils.misc`` and ``dnnlib`` importable."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence.persistent_class = _persistent_class
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    misc = types.ModuleType("torch_utils.misc")
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence, torch_utils.misc = persistence, misc
    dnnlib_util = types.ModuleType("dnnlib.util")
    dnnlib_util.EasyDict = EasyDict
    dnnlib = types.ModuleType("dnnlib")
    dnnlib.util, dnnlib.EasyDict = dnnlib_util, EasyDict
    stand_ins = {"torch_utils": torch_utils, "torch_utils.persistence": persistence,
                 "torch_utils.misc": misc, "dnnlib": dnnlib, "dnnlib.util": dnnlib_util}
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _EDMUnpickler(pickle.Unpickler):
    """Resolves EDM's persistence hooks to the stand-ins; other globals from an allowlist."""

    def find_class(self, module: str, name: str):
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return _reconstruct_persistent_obj
        if module in ("dnnlib.util", "dnnlib") and name == "EasyDict":
            return EasyDict
        if module == "builtins" and name in ("set", "frozenset", "slice", "range", "complex"):
            return super().find_class(module, name)
        if module.split(".")[0] in _ALLOWED_PREFIXES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an EDM pickle")


def read_edm_pickle(path: Path, trust: bool, key: str = "model.path") -> nn.Module:
    """The ``ema`` network of an EDM snapshot (or the pickled network itself)."""
    if not trust:
        raise ConfigError("model.trust_pickle", False,
                          "EDM checkpoints are pickles and unpickling runs code; set "
                          "model.trust_pickle=true only for a file you trust")
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file; give the local path of an EDM .pkl "
                          "(published at https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/)")
    try:
        with _edm_stand_ins(), open(path, "rb") as f:
            data = _EDMUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError,
            TypeError, ValueError) as err:
        raise ConfigError(key, str(path), f"not a readable EDM network pickle ({err})") from None
    net = data.get("ema") if isinstance(data, dict) else data
    if not isinstance(net, nn.Module) or not hasattr(net, "model"):
        raise ConfigError(key, str(path), "the pickle holds no EDM network (no 'ema' entry with "
                          "a preconditioned model)")
    return net


def find_edm_skips(net: nn.Module, prefix: str = "model.") -> list[SkipPoint]:
    """Skips of a SongUNet or DhariwalUNet inside an EDM preconditioning wrapper, bottom first.

    Decoder blocks whose ``in_channels`` differ from the running channel count take
    ``concat([x, skips.pop()])``; the encoder outputs are pushed in ``enc`` order.
    """
    unet = net.model
    if not all(isinstance(getattr(unet, n, None), nn.ModuleDict) for n in ("enc", "dec")):
        raise ValueError(f"{type(unet).__name__} has no enc/dec module dicts")
    stack = []
    for name, block in unet.enc.items():
        if "aux" in name:
            continue
        stack.append(_out_channels(block))
    points, channels = [], stack[-1]  # the decoder starts from the last encoder output
    for name, block in unet.dec.items():
        if "aux" in name:
            continue
        in_ch = block.in_channels
        if in_ch != channels:
            skip_ch = stack.pop()
            if in_ch - channels != skip_ch:
                raise ValueError(f"dec.{name} takes {in_ch} channels: {channels} + a skip of "
                                 f"{in_ch - channels}, but the encoder gives {skip_ch}")
            res = int(_BLOCK_NAME.match(name).group(1))
            level = round(math.log2(unet.img_resolution / res))
            points.append(SkipPoint(len(points), level, res, skip_ch, in_ch,
                                    f"{prefix}dec.{name}"))
        channels = block.out_channels
    if stack:
        raise ValueError(f"{len(stack)} encoder outputs were never consumed by the decoder")
    return points


def _out_channels(block: nn.Module) -> int:
    """Output channels of an encoder entry (a UNet block or a plain convolution)."""
    for attr in ("out_channels", "out_ch"):
        if isinstance(getattr(block, attr, None), int):
            return getattr(block, attr)
    raise ValueError(f"cannot tell the output channels of {type(block).__name__}")


class EDMNetworkDenoiser(Denoiser):
    """An EDM preconditioned network (EDM/VP/VE/iDDPM Precond) as a Denoiser."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.img_channels = int(net.img_channels)
        self.img_resolution = int(net.img_resolution)
        self.label_dim = int(net.label_dim)
        self.sigma_data = float(getattr(net, "sigma_data", 0.5))
        self.skips = find_edm_skips(net, prefix="net.model.")

    def forward(self, x: torch.Tensor, sigma: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x; sigma) from the wrapper's own preconditioning, in float32."""
        return self.net(x.to(torch.float32), sigma.to(torch.float32), class_labels).to(
            torch.float32)


def load_edm_denoiser(path: Path, trust: bool) -> EDMNetworkDenoiser:
    """The EDM network at ``path`` as a Denoiser in eval mode."""
    net = read_edm_pickle(path, trust)
    return EDMNetworkDenoiser(net).eval().requires_grad_(False)
