"""The schedule and its hooks: coefficients, where they act, files, and diffusers."""
