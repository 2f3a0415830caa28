"""Test stand-in for NVlabs' ``dnnlib`` package."""

from .util import EasyDict

__all__ = ["EasyDict"]
