"""NVlabs persistence-format pickles (EDM, EDM2), read with an exact allowlist.

NVlabs' ``torch_utils.persistence`` stores every network object as a call
``_reconstruct_persistent_obj(meta)`` whose ``meta`` holds the source text of the module that
defined its class, the class name and the object's state. Rebuilding a network runs that
source: this is what ``model.trust_pickle=true`` grants, and only for the network classes in
``NETWORK_CLASSES``. Other persistent objects of a snapshot (loss functions, augmentation
pipes, EDM2's encoders) come back as inert ``Unbuilt`` records; their code never runs.

Every other global the pickle names must be one of the exact (module, name) pairs of
``SAFE_GLOBALS``; a dotted name is never walked. Tensor storages are read with
``torch.load(weights_only=True)``, not with the code-running loader plain pickles use.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..configuration.errors import ConfigError

PERSISTENCE_VERSION = 6
# The persistent classes whose embedded source is run: EDM's training/networks.py and EDM2's
# training/networks_edm2.py.
NETWORK_CLASSES = frozenset({
    "Linear", "Conv2d", "GroupNorm", "UNetBlock", "PositionalEmbedding", "FourierEmbedding",
    "SongUNet", "DhariwalUNet", "VPPrecond", "VEPrecond", "iDDPMPrecond", "EDMPrecond",
    "MPFourier", "MPConv", "Block", "UNet", "Precond",
})
# Exact (module, name) pairs a snapshot may name besides the persistence hook.
SAFE_GLOBALS = frozenset({
    ("collections", "OrderedDict"), ("torch.nn.modules.container", "ModuleDict"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"),
    ("__builtin__", "frozenset"), ("_codecs", "encode"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
})


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value


class Unbuilt:
    """A persistent object whose class is not a network: its name and state, no code run."""

    def __init__(self, class_name: str, state: dict | None) -> None:
        self.class_name, self.state = class_name, dict(state or {})

    def __repr__(self) -> str:
        return f"Unbuilt({self.class_name})"


def _load_storage(data: bytes):
    """A pickled tensor storage, read by torch's weights-only loader (runs no code)."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _const_like(ref: torch.Tensor, value, shape=None, dtype=None, device=None,
                memory_format=None) -> torch.Tensor:
    """Stand-in for ``torch_utils.misc.const_like``: ``value`` as a tensor like ``ref``."""
    out = torch.as_tensor(np.asarray(value), dtype=dtype or ref.dtype,
                          device=device or ref.device)
    if shape is not None:
        out = out.broadcast_to(shape)
    return out.contiguous(memory_format=memory_format or torch.contiguous_format)


def _module_from_source(source: str) -> types.ModuleType:
    """Run embedded module source once per content hash (trusted files only)."""
    name = "_skipsearch_nvlabs_" + hashlib.sha256(source.encode()).hexdigest()[:16]
    if name not in sys.modules:
        module = types.ModuleType(name)
        sys.modules[name] = module
        try:
            exec(compile(source, f"<{name}>", "exec"), module.__dict__)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _reconstruct_persistent_obj(meta: dict) -> Any:
    """Re-create one persistent object from its ``meta``; non-network classes stay inert."""
    if meta.get("type") != "class" or meta.get("version") != PERSISTENCE_VERSION:
        raise pickle.UnpicklingError(f"an unsupported persistence record (type "
                                     f"{meta.get('type')!r}, version {meta.get('version')!r})")
    if meta.get("class_name") not in NETWORK_CLASSES:
        return Unbuilt(str(meta.get("class_name")), meta.get("state"))
    cls = getattr(_module_from_source(meta["module_src"]), meta["class_name"])
    obj = cls.__new__(cls)
    setstate = getattr(obj, "__setstate__", None)
    if callable(setstate):
        setstate(meta["state"])
    else:
        obj.__dict__.update(meta["state"])
    return obj


def _persistent_class(orig_class: type) -> type:
    """Stand-in for ``persistence.persistent_class``: the class itself, unchanged."""
    return orig_class


@contextlib.contextmanager
def nvlabs_stand_ins() -> Iterator[None]:
    """``torch_utils.persistence``, ``torch_utils.misc`` and ``dnnlib`` for embedded source."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence.persistent_class = _persistent_class
    misc = types.ModuleType("torch_utils.misc")
    misc.const_like = _const_like
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


class NVlabsUnpickler(pickle.Unpickler):
    """Resolves the persistence hook and ``EasyDict`` to stand-ins, other globals exactly."""

    def find_class(self, module: str, name: str):
        """The object for an exact allowed (module, name) pair; UnpicklingError otherwise."""
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return _reconstruct_persistent_obj
        if (module, name) in (("dnnlib.util", "EasyDict"), ("dnnlib", "EasyDict")):
            return EasyDict
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an NVlabs "
                                     f"network pickle")


def read_nvlabs_pickle(path: Path, trust: bool, expected: str, key: str = "model.path") -> Any:
    """The unpickled snapshot at ``path``; every failure a one-line ConfigError on ``key``."""
    if not trust:
        raise ConfigError("model.trust_pickle", False,
                          f"{expected} checkpoints are pickles and unpickling runs code; set "
                          "model.trust_pickle=true only for a file you trust")
    if not path.is_file():
        raise ConfigError(key, str(path), f"no such file; give the local path of {expected} "
                          ".pkl snapshot")
    try:
        with nvlabs_stand_ins(), open(path, "rb") as f:
            return NVlabsUnpickler(f).load()
    except Exception as err:  # embedded source can raise anything; the user sees one line
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        raise ConfigError(key, str(path), f"expected {expected} network pickle, could not "
                          f"read it ({reason})") from None

