"""An epsilon-prediction network on a VP schedule as an EDM-form Denoiser.

D(x; sigma) = x - sigma eps(x / sqrt(1 + sigma^2), t(sigma)); a network with learned variance
outputs [eps, variance values] along the channels and only the eps half is used. With a
guidance scale w != 1, eps = eps_null + w (eps_class - eps_null) with the null class of
classifier-free training, both passes in one batch. Latent models decode through a local
autoencoder folder (``models.autoencoder``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..tuning.skips import SkipPoint
from .denoiser import Denoiser
from .diffusers_unet import class_indices
from .vp_schedules import ContinuousVP, DiscreteVP


class EpsDenoiser(Denoiser):
    """A VP eps-prediction network ``net(x_vp, t, class indices or None)`` in EDM's form."""

    def __init__(self, net: nn.Module, schedule: DiscreteVP | ContinuousVP,
                 img_channels: int, img_resolution: int, label_dim: int,
                 skips: list[SkipPoint], guidance_scale: float = 1.0,
                 null_class: int | None = None, decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.net, self.schedule = net, schedule
        self.sigma_min, self.sigma_max = schedule.sigma_min, schedule.sigma_max
        self.sigma_range = schedule.sigma_range
        self.img_channels, self.img_resolution = img_channels, img_resolution
        self.label_dim = label_dim
        self.skips = [SkipPoint(p.index, p.level, p.resolution, p.skip_channels, p.in_channels,
                                "net." + p.module_name, p.feature_dim) for p in skips]
        self.guidance_scale, self.null_class = float(guidance_scale), null_class
        self.decoder = decoder

    def eps(self, x_vp: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None
            ) -> torch.Tensor:
        """The network's eps (the first img_channels output channels)."""
        out = self.net(x_vp, t, labels)
        return out[:, : self.img_channels].to(torch.float32)

    def guided_eps(self, x_vp: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None
                   ) -> torch.Tensor:
        """eps, or eps_null + w (eps_class - eps_null) in one batch when w != 1."""
        if self.guidance_scale == 1.0 or labels is None:
            return self.eps(x_vp, t, labels)
        null = torch.full_like(labels, int(self.null_class))
        both = self.eps(torch.cat([x_vp, x_vp]), torch.cat([t, t]), torch.cat([null, labels]))
        eps_null, eps_class = both.chunk(2)
        return eps_null + self.guidance_scale * (eps_class - eps_null)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x; sigma) = x - sigma eps(c_in x, t(sigma)), c_in = 1 / sqrt(1 + sigma^2)."""
        level = torch.as_tensor(sigma, device=x.device).flatten()
        # The timestep from the level in float64 (as the samplers pass it), then float32: each
        # of the schedule's own levels lands exactly on its integer timestep.
        t = self.schedule.timestep(level.to(torch.float64)).to(torch.float32)
        t = t.expand(x.shape[0])
        sigma = level.to(torch.float32).reshape(-1, 1, 1, 1)
        x32 = x.to(torch.float32)
        dtype = next(self.net.parameters()).dtype
        labels = class_indices(class_labels) if self.label_dim else None
        eps = self.guided_eps((x32 / (sigma**2 + 1).sqrt()).to(dtype), t, labels)
        return x32 - sigma * eps

    @property
    def can_guide(self) -> bool:
        """Class-conditional with a null class: guidance weights apply."""
        return self.label_dim > 0 and self.null_class is not None

    @property
    def image_channels(self) -> int:
        """Channels of the decoded images."""
        return self.img_channels if self.decoder is None else self.decoder.image_channels

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents through the autoencoder (if any) to images in [-1, 1]."""
        return x if self.decoder is None else self.decoder(x)
