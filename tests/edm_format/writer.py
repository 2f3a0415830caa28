"""Write networks from ``networks.py`` as EDM snapshot pickles (``torch_utils.persistence``).

Each persistent object pickles as ``_reconstruct_persistent_obj(meta)`` with
``meta = {type: "class", version: 6, module_src, class_name, state}``, the format of EDM's
``torch_utils/persistence.py``; the snapshot is a dict whose ``ema`` entry is the network.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch

SOURCE = (Path(__file__).parent / "networks.py").read_text()


class EasyDict(dict):
    """The writer's ``dnnlib.util.EasyDict``."""


EasyDict.__module__ = "dnnlib.util"


def _reconstruct_persistent_obj(meta: dict):
    """Only its pickled name matters to the writer."""
    raise RuntimeError("the test writer cannot load pickles")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


def _persistent_class(orig_class: type) -> type:
    """Make instances pickle in EDM's persistence format, embedding ``SOURCE``."""

    class Decorator(orig_class):
        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            meta = {"type": "class", "version": 6, "module_src": SOURCE,
                    "class_name": orig_class.__name__, "state": fields[2]}
            return _reconstruct_persistent_obj, (meta,)

    Decorator.__name__ = Decorator.__qualname__ = orig_class.__name__
    return Decorator


@contextlib.contextmanager
def edm_modules() -> Iterator[types.ModuleType]:
    """Register writer versions of torch_utils and dnnlib; yield the networks module."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence.persistent_class = _persistent_class
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence = persistence
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = EasyDict
    dnnlib = types.ModuleType("dnnlib")
    dnnlib.util = util
    added = {"torch_utils": torch_utils, "torch_utils.persistence": persistence,
             "dnnlib": dnnlib, "dnnlib.util": util}
    saved = {k: sys.modules.get(k) for k in added}
    sys.modules.update(added)
    try:
        networks = types.ModuleType("edm_test_networks")
        exec(compile(SOURCE, "networks.py", "exec"), networks.__dict__)
        yield networks
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def build_network(precond: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A randomly initialised EDM-format network (kept importable only inside the writer)."""
    torch.manual_seed(seed)
    with edm_modules() as networks:
        return getattr(networks, precond)(**kwargs).eval()


def write_snapshot(path: Path, precond: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """Build a network and pickle it as EDM's ``network-snapshot-*.pkl``; return the network."""
    with edm_modules() as networks:
        torch.manual_seed(seed)
        net = getattr(networks, precond)(**kwargs).eval()
        data = {"ema": net, "dataset_kwargs": EasyDict(resolution=kwargs["img_resolution"])}
        with open(path, "wb") as f:
            pickle.dump(data, f)
    return net
