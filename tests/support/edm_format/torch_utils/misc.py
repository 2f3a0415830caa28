"""Test stand-in for ``torch_utils.misc``: the one helper EDM2's networks and encoders call."""

import numpy as np
import torch


def const_like(ref, value, shape=None, dtype=None, device=None, memory_format=None):
    """``value`` as a tensor with ``ref``'s dtype and device (unless given)."""
    out = torch.as_tensor(np.asarray(value), dtype=dtype or ref.dtype,
                          device=device or ref.device)
    if shape is not None:
        out = out.broadcast_to(shape)
    return out.contiguous(memory_format=memory_format or torch.contiguous_format)
