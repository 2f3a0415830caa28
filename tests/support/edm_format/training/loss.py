"""Test stand-in for EDM's ``training/loss.py``: the loss objects a snapshot pickles.

Their attributes are EDM's; the losses themselves (Karras et al. 2022, Eq. 2 with Table 1's
weighting) are not needed to load a snapshot and are left out of the stand-in.
"""

from torch_utils import persistence


@persistence.persistent_class
class VPLoss:
    def __init__(self, beta_d=19.9, beta_min=0.1, epsilon_t=1e-5):
        self.beta_d = beta_d
        self.beta_min = beta_min
        self.epsilon_t = epsilon_t


@persistence.persistent_class
class VELoss:
    def __init__(self, sigma_min=0.02, sigma_max=100):
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max


@persistence.persistent_class
class EDMLoss:
    def __init__(self, P_mean=-1.2, P_std=1.2, sigma_data=0.5):
        self.P_mean = P_mean
        self.P_std = P_std
        self.sigma_data = sigma_data
