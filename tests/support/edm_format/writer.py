"""Write the stand-in networks as NVlabs EDM and EDM2 snapshot pickles.

The stand-ins are imported under NVlabs' module names (``torch_utils.persistence``,
``dnnlib.util``, ``training.networks``, ...) only while a network is built and pickled, so
nothing of them stays importable for the loader under test. Snapshot layouts:

- EDM (``training/training_loop.py``): a dict ``{ema, loss_fn, augment_pipe,
  dataset_kwargs}``, the network in float32 (no augmentation pipe at these sizes).
- EDM2 (``training/training_loop.py`` and ``reconstruct_phema.py``, same layout for the
  post-hoc EMA snapshots): a ``dnnlib.EasyDict`` ``{encoder, dataset_kwargs, loss_fn, ema}``,
  the network cast to float16.

Built networks get random weights (EDM's own initialisation zeroes the output layers).
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).parent
PACKAGES = ("dnnlib", "torch_utils", "training")
EDM_LOSSES = {"VPPrecond": "VPLoss", "VEPrecond": "VELoss", "EDMPrecond": "EDMLoss"}


def _ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


@contextlib.contextmanager
def nvlabs_modules() -> Iterator[object]:
    """``importlib.import_module`` over the stand-ins; afterwards none of them is importable."""
    saved = {n: sys.modules.pop(n) for n in [n for n in sys.modules if _ours(n)]}
    sys.path.insert(0, str(ROOT))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(ROOT))
        for name in [n for n in sys.modules if _ours(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def randomize(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights of unit gain: fan-in scaled matrices, gains and norms near one."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            elif name.endswith("gain"):
                p.copy_(0.5 + 0.2 * noise)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
    return net


def _edm(load, precond: str, seed: int, kwargs: dict) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = getattr(load("training.networks"), precond)(**kwargs)
    return randomize(net, seed).eval().requires_grad_(False)


def build_network(precond: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A random EDM network: ``precond`` (EDMPrecond, VPPrecond, ...) around ``model_type``."""
    with nvlabs_modules() as load:
        return _edm(load, precond, seed, kwargs)


def write_snapshot(path: Path, precond: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """Pickle a random EDM network as ``network-snapshot-*.pkl``; return the network."""
    with nvlabs_modules() as load:
        net = _edm(load, precond, seed, kwargs)
        loss = EDM_LOSSES.get(precond)
        data = {"ema": net,
                "loss_fn": getattr(load("training.loss"), loss)() if loss else None,
                "augment_pipe": None,
                "dataset_kwargs": {"class_name": "training.dataset.ImageFolderDataset",
                                   "path": "datasets/tiny.zip",
                                   "use_labels": bool(kwargs.get("label_dim")), "xflip": False,
                                   "cache": True, "resolution": kwargs["img_resolution"],
                                   "max_size": 64}}
        with open(path, "wb") as f:
            pickle.dump(data, f)
    return net


def _edm2(load, seed: int, kwargs: dict) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = load("training.networks_edm2").Precond(**kwargs)
    return randomize(net, seed).eval().requires_grad_(False).to(torch.float16)


def build_edm2(seed: int = 0, **kwargs) -> torch.nn.Module:
    """A random EDM2 ``Precond`` around the magnitude-preserving ``UNet``, in float16."""
    with nvlabs_modules() as load:
        return _edm2(load, seed, kwargs)


def write_edm2_snapshot(path: Path, seed: int = 0, latent: bool = False,
                        **kwargs) -> torch.nn.Module:
    """Pickle a random EDM2 network as a (post-hoc EMA) snapshot; return the network."""
    with nvlabs_modules() as load:
        net = _edm2(load, seed, kwargs)
        dnnlib, encoders = load("dnnlib"), load("training.encoders")
        encoder = (encoders.StabilityVAEEncoder(vae_name="stabilityai/sd-vae-ft-mse")
                   if latent else encoders.StandardRGBEncoder())
        data = dnnlib.EasyDict(
            encoder=encoder,
            dataset_kwargs=dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset",
                                           path="datasets/tiny.zip",
                                           use_labels=bool(kwargs.get("label_dim"))),
            loss_fn=load("training.training_loop").EDM2Loss())
        data.ema = net
        with open(path, "wb") as f:
            pickle.dump(data, f)
    return net
