"""Typed reads of one config key each, with the one-line ConfigError contract (torch-free)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import check


def get(cfg: DictConfig, key: str) -> Any:
    """The value at dotted ``key``; ConfigError if it is missing."""
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    check(value is not None, key, value, "this key is required; set it in conf/ or as an override")
    return value


def get_int(cfg: DictConfig, key: str, minimum: int) -> int:
    """An integer at ``key`` that is at least ``minimum``."""
    value = get(cfg, key)
    check(isinstance(value, int) and not isinstance(value, bool), key, value,
          f"must be an integer >= {minimum}")
    check(value >= minimum, key, value, f"must be >= {minimum}")
    return value


def get_float(cfg: DictConfig, key: str, low: float, high: float = float("inf")) -> float:
    """A number at ``key`` in (low, high]."""
    value = get(cfg, key)
    check(isinstance(value, (int, float)) and not isinstance(value, bool), key, value,
          "must be a number")
    check(low < value <= high, key, value, f"must lie in ({low:g}, {high:g}]")
    return float(value)


def get_choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> str:
    """A string at ``key`` out of ``choices``."""
    value = get(cfg, key)
    check(value in choices, key, value, f"choose one of: {', '.join(choices)}")
    return str(value)


def get_bool(cfg: DictConfig, key: str) -> bool:
    """``true`` or ``false`` at ``key``."""
    value = get(cfg, key)
    check(isinstance(value, bool), key, value, "must be true or false")
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
