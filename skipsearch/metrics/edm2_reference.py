"""EDM2's published reference statistics (e.g. ``img512.pkl``), read without running their code.

EDM2's ``calculate_metrics.py ref`` pickles a plain dict: ``num_images`` and, per detector
(``fid``, ``fd_dinov2``), a dict of float64 ``mu`` (D,) and ``sigma`` (D, D) numpy arrays.
Unpickling can call any importable function, so the unpickler here resolves only the few
globals such a file needs (numpy's array and dtype reconstruction, under numpy 1.x or 2.x
names, and builtin containers) and refuses every other one before anything is called.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..configuration.errors import ConfigError

# numpy's reconstruction helpers, by submodule of numpy.core (1.x) or numpy._core (2.x).
NUMPY_CORE_GLOBALS = {("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                      ("numeric", "_frombuffer")}
PLAIN_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                 ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
                 ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
                 ("collections", "OrderedDict")}
FIX = "give a statistics pickle written by EDM2's calculate_metrics.py ref (e.g. img512.pkl)"


def _numpy_core(submodule: str) -> Any:
    """numpy's ``_core.<submodule>`` (numpy 2.x), or ``core.<submodule>`` on numpy 1.x."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


class _ReferenceUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy arrays, dtypes and builtin containers."""

    def __init__(self, file: Any, path: Path, key: str) -> None:
        super().__init__(file)
        self.path, self.key = path, key

    def find_class(self, module: str, name: str) -> Any:
        """The allowed global ``module.name``; any other is a ConfigError, never imported."""
        for prefix in ("numpy.core.", "numpy._core."):
            submodule = module.removeprefix(prefix)
            if module.startswith(prefix) and (submodule, name) in NUMPY_CORE_GLOBALS:
                return getattr(_numpy_core(submodule), name)
        if (module, name) in PLAIN_GLOBALS:
            return super().find_class(module, name)
        raise ConfigError(self.key, str(self.path), f"the pickle needs {module}.{name}, which "
                          f"no reference pickle holds; refused unrun; {FIX}")


def is_edm2_reference(path: Path) -> bool:
    """Whether ``path`` is a .pkl file (EDM2's format of reference statistics)."""
    path = Path(path)
    return path.suffix.lower() == ".pkl" and path.is_file()


def _statistics(name: str, entry: Any, path: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The checked float64 (mu, sigma) of one detector's entry."""
    if not isinstance(entry, dict) or "mu" not in entry or "sigma" not in entry:
        raise ConfigError(key, str(path), f"entry {name!r} has no mu and sigma; {FIX}")
    try:
        mu = np.asarray(entry["mu"], dtype=np.float64)
        sigma = np.asarray(entry["sigma"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(key, str(path), f"{name!r} mu/sigma are not numeric arrays; "
                          f"{FIX}") from None
    if mu.ndim != 1 or mu.size == 0 or sigma.shape != (mu.size, mu.size):
        raise ConfigError(key, str(path), f"{name!r} has mu of shape {mu.shape} and sigma of "
                          f"shape {sigma.shape}; need (D,) and (D, D); {FIX}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ConfigError(key, str(path), f"{name!r} mu/sigma hold NaN or inf; {FIX}")
    return mu, sigma


def read_edm2_reference(path: Path, key: str = "metric.reference"
                        ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Detector name ('fid', 'fd_dinov2') to float64 (mu, sigma) of an EDM2 statistics pickle."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(key, str(path), f"no such file; {FIX}")
    try:
        with open(path, "rb") as f:
            data = _ReferenceUnpickler(f, path, key).load()
    except ConfigError:
        raise
    except Exception as err:  # a truncated or foreign file
        text = " ".join(str(err).split())[:200]
        raise ConfigError(key, str(path), f"not a readable pickle ({type(err).__name__}: "
                          f"{text}); {FIX}") from None
    if not isinstance(data, dict):
        raise ConfigError(key, str(path), f"holds a {type(data).__name__}, not a dict; {FIX}")
    stats = {str(name): _statistics(str(name), entry, path, key)
             for name, entry in data.items() if isinstance(entry, dict)}
    if not stats:
        raise ConfigError(key, str(path), f"no detector statistics (keys {sorted(map(str, data))}"
                          f"); {FIX}")
    return stats
