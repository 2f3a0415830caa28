"""Packages whose public names are imported on first use, so light paths never load torch."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name of ``exports`` (name -> module)
    is imported from its module the first time it is asked for, then kept in the package."""
    namespace = sys.modules[package].__dict__

    def get_name(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def list_names() -> list[str]:
        return sorted({*namespace, *exports})

    return get_name, list_names
