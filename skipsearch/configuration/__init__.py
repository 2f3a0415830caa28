"""Configuration: commands, composed settings, typed keys, checks and errors."""
