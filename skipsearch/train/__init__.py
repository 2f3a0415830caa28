"""Training of the bundled digits model and feature network (``skipsearch train-toy``)."""
