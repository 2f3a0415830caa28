"""Test stand-in for EDM2's ``training/encoders.py``: pixel and latent representations.

``StabilityVAEEncoder`` keeps a per-channel affine map between the Stable Diffusion VAE's raw
latents and the final latents the network sees (``final = raw * scale + bias``) and pickles
without its VAE. Pixels are uint8 in [0, 255]; the VAE sees them divided by 255.
"""

import numpy as np
import torch
from torch_utils import misc, persistence


@persistence.persistent_class
class Encoder:
    def __init__(self):
        pass

    def init(self, device):
        pass

    def __getstate__(self):
        return self.__dict__

    def decode(self, x):
        raise NotImplementedError


@persistence.persistent_class
class StandardRGBEncoder(Encoder):
    def __init__(self):
        super().__init__()

    def decode(self, x):
        return (x.to(torch.float32) * 127.5 + 128).clip(0, 255).to(torch.uint8)


@persistence.persistent_class
class StabilityVAEEncoder(Encoder):
    def __init__(self, vae_name="stabilityai/sd-vae-ft-mse", raw_mean=[5.81, 3.25, 0.12, -2.15],
                 raw_std=[4.17, 4.62, 3.71, 3.28], final_mean=0, final_std=0.5, batch_size=8):
        super().__init__()
        self.vae_name = vae_name
        self.scale = np.float32(final_std) / np.float32(raw_std)
        self.bias = np.float32(final_mean) - np.float32(raw_mean) * self.scale
        self.batch_size = int(batch_size)
        self._vae = None

    def __getstate__(self):
        return dict(super().__getstate__(), _vae=None)  # the VAE is never pickled

    def decode(self, x):
        x = x.to(torch.float32)
        x = x - misc.const_like(x, self.bias).reshape(1, -1, 1, 1)
        x = x / misc.const_like(x, self.scale).reshape(1, -1, 1, 1)
        x = torch.cat([self._vae.decode(b)["sample"] for b in x.split(self.batch_size)])
        return x.clamp(0, 1).mul(255).to(torch.uint8)
