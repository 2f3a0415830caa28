"""The precision policy: the network's dtype, the sampler's, the feature network's, the layout.

The network runs under ``torch.autocast`` in bf16 or fp16: weights stay fp32 and are cast per
operation, as EDM's own ``use_fp16`` option casts them per layer; autocast also keeps
normalizations and softmax in fp32. The sampler integrates in float64 (the default) or
float32. ``fp32`` everywhere leaves the computation exactly as it is without a policy.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads on first use, so the config check reads the names without it
    import torch

# The precisions by name (the config's choices) and the torch dtype each stands for.
NETWORK_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
SAMPLER_DTYPES = {"float64": "float64", "float32": "float32"}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a network or sampler precision called ``name``."""
    import torch

    return getattr(torch, {**NETWORK_DTYPES, **SAMPLER_DTYPES}[name])


def autocast(device: torch.device | str, name: str) -> contextlib.AbstractContextManager:
    """Autocast to the dtype called ``name`` on ``device``'s type; nothing at all for fp32."""
    import torch

    dtype = torch_dtype(name)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    # No weight-cast cache: the weights need no gradient, and CUDA graphs forbid the cache.
    return torch.autocast(torch.device(device).type, dtype=dtype, cache_enabled=False)


@dataclass(frozen=True)
class Precision:
    """How a trial computes: network and sampler dtypes, and the network's memory layout."""

    network: str = "fp32"
    sampler: str = "float64"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.network not in NETWORK_DTYPES:
            raise ValueError(f"unknown network precision {self.network!r}; choose one of "
                             f"{', '.join(NETWORK_DTYPES)}")
        if self.sampler not in SAMPLER_DTYPES:
            raise ValueError(f"unknown sampler precision {self.sampler!r}; choose one of "
                             f"{', '.join(SAMPLER_DTYPES)}")

    @property
    def sampler_dtype(self) -> torch.dtype:
        """The dtype the sampler integrates in."""
        return torch_dtype(self.sampler)

    def network_autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager:
        """The autocast context of one network evaluation on ``device``."""
        return autocast(device, self.network)


def channels_last_wanted(setting: str, device: str, network: str) -> bool:
    """``auto``: channels_last on CUDA with bf16/fp16 (tensor-core convolutions), else off."""
    if setting == "auto":
        return device.startswith("cuda") and network != "fp32"
    return setting == "true"


FP32 = Precision()  # fp32 network, float64 sampler: the computation without a policy
