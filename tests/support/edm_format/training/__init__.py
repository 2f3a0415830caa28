"""Test stand-ins for NVlabs EDM's and EDM2's ``training`` package."""
