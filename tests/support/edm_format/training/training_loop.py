"""Test stand-in for EDM2's ``training/training_loop.py``: only its pickled loss object.

EDM2 snapshots carry an ``EDM2Loss`` (attributes P_mean, P_std, sigma_data); the training
loop itself is not part of a snapshot and is left out.
"""

from torch_utils import persistence


@persistence.persistent_class
class EDM2Loss:
    def __init__(self, P_mean=-0.4, P_std=1.0, sigma_data=0.5):
        self.P_mean = P_mean
        self.P_std = P_std
        self.sigma_data = sigma_data
