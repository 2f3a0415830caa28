"""Test stand-in for NVlabs' ``torch_utils`` package (only what the snapshots need)."""
