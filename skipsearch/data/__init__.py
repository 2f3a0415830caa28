"""Data sets the project can use without a network."""
