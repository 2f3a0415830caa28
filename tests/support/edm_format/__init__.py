"""Test fixtures that write checkpoints in NVlabs EDM's pickle format."""
