"""The ``torch.compile`` modes the ``compile`` key may name; torch-free, for the config check."""

from __future__ import annotations

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
