"""Where and how a run computes: device, precision, compilation, CUDA graphs, batch size."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from ..configuration.errors import check
from ..configuration.keys import get, get_bool, get_choice, get_int
from .compile_modes import COMPILE_MODES
from .precision import NETWORK_DTYPES, SAMPLER_DTYPES


def check_device_name(value: str) -> str:
    """``device`` must be auto, cpu, cuda or cuda:N (checked without torch)."""
    check(value in ("auto", "cpu") or value == "cuda" or (
        value.startswith("cuda:") and value[5:].isdigit()), "device", value,
        "choose auto, cpu, cuda or cuda:N")
    return value


def resolve_device(value: str) -> str:
    """``auto`` picks cuda when available; an unavailable cuda device is a ConfigError."""
    check_device_name(value)
    if value == "cpu":
        return value
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check(torch.cuda.is_available(), "device", value,
          "no CUDA device is visible; use device=cpu or device=auto")
    return value


@dataclass(frozen=True)
class Execution:
    """The device asked for, the precision policy's names, compile mode, graphs, batch size."""

    device: str
    network: str = "fp32"
    sampler: str = "float64"
    features: str = "fp32"
    channels_last: str = "auto"  # auto | true | false
    compile: str | None = None
    cuda_graph: bool = False
    batch_size: int = 250

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Execution:
        """The checked keys; a CUDA device asked for must be visible (only then loads torch)."""
        device = check_device_name(str(get(cfg, "device")))
        network = get_choice(cfg, "precision.network", tuple(NETWORK_DTYPES))
        sampler = get_choice(cfg, "precision.sampler", tuple(SAMPLER_DTYPES))
        features = get_choice(cfg, "precision.features", tuple(NETWORK_DTYPES))
        layout = get(cfg, "precision.channels_last")
        check(isinstance(layout, bool) or layout == "auto", "precision.channels_last", layout,
              "must be true, false or auto")
        mode = cfg.get("compile")
        check(mode is None or mode in COMPILE_MODES, "compile", mode,
              f"choose null (eager) or one of: {', '.join(COMPILE_MODES)}")
        graph = get_bool(cfg, "cuda_graph")
        check(not graph or device != "cpu", "cuda_graph", graph,
              f"CUDA graphs need a CUDA device, and device={device}; set cuda_graph=false")
        return cls(device, network, sampler, features, str(layout).lower(), mode, graph,
                   get_int(cfg, "batch_size", 1))

    def check_device(self) -> None:
        """A CUDA device (asked for, or needed by ``cuda_graph``) must be visible; loads torch."""
        if self.device == "cpu" or (self.device == "auto" and not self.cuda_graph):
            return  # nothing to ask torch: auto falls back to the CPU
        resolved = resolve_device(self.device)
        check(not self.cuda_graph or resolved.startswith("cuda"), "cuda_graph",
              self.cuda_graph, f"CUDA graphs need a CUDA device, and device={resolved}; "
              "set cuda_graph=false")
