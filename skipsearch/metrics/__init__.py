"""Feature networks, reference statistics and FID."""
