"""Typed reads of one config key each, with the one-line ConfigError contract (torch-free)."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import check


def is_number(value: object) -> bool:
    """An int or a float (booleans are not numbers, though Python counts them as ints)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def get(cfg: DictConfig, key: str) -> Any:
    """The value at dotted ``key``; ConfigError if it is missing."""
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    check(value is not None, key, value, "this key is required; set it in conf/ or as an override")
    return value


def get_int(cfg: DictConfig, key: str, minimum: int, maximum: int | None = None) -> int:
    """An integer at ``key`` in [minimum, maximum] (no upper bound when ``maximum`` is None)."""
    value = get(cfg, key)
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    check(isinstance(value, int) and not isinstance(value, bool), key, value,
          f"must be an integer {allowed}")
    check(value >= minimum and (maximum is None or value <= maximum), key, value,
          f"must be {allowed}")
    return value


def get_float(cfg: DictConfig, key: str, low: float, high: float = math.inf) -> float:
    """A finite number at ``key`` in (low, high]."""
    value = get(cfg, key)
    check(is_number(value), key, value, "must be a number")
    bounds = f"({low:g}, {high:g}]" if math.isfinite(high) else f"> {low:g} and finite"
    check(math.isfinite(value) and low < value <= high, key, value, f"must be {bounds}")
    return float(value)


def get_choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> str:
    """A string at ``key`` out of ``choices``."""
    value = get(cfg, key)
    check(value in choices, key, value, f"choose one of: {', '.join(choices)}")
    return str(value)


def get_bool(cfg: DictConfig, key: str, default: bool | None = None) -> bool:
    """``true`` or ``false`` at ``key`` (``default`` when unset, if one is given)."""
    if default is not None and OmegaConf.select(cfg, key, default=None) is None:
        return default
    value = get(cfg, key)
    check(isinstance(value, bool), key, value, "must be true or false")
    return value


def get_path(cfg: DictConfig, key: str) -> str:
    """A non-empty path at ``key`` (an empty one would mean the current or the root folder)."""
    value = get(cfg, key)
    check(isinstance(value, str) and value.strip() != "", key, value,
          "must be a non-empty path, e.g. outputs")
    return value


def get_list(cfg: DictConfig, key: str) -> list | None:
    """The list at ``key`` as a plain list; None if unset; a non-list value as it is."""
    value = OmegaConf.select(cfg, key)
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value)
    return value


def get_optional(cfg: DictConfig, key: str) -> Any:
    """The value at ``key``, or None when it is unset or missing (``???``)."""
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    return None if value == "???" else value
