"""Test support: stand-ins of third-party formats, tiny builders, readers."""
