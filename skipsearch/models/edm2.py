"""NVlabs EDM2 checkpoints (Karras et al. 2024): pixel ImageNet-64 and latent ImageNet-512.

A snapshot (``network-snapshot-*.pkl`` or a post-hoc EMA ``phema-*.pkl``, same layout) is a
``dnnlib.EasyDict`` whose ``ema`` is a ``Precond`` around the magnitude-preserving ``UNet``,
stored in float16, and whose ``encoder`` says what the network samples: pixels
(``StandardRGBEncoder``) or Stable Diffusion VAE latents (``StabilityVAEEncoder``, whose affine
map ``final = raw * scale + bias`` is pickled without the VAE; the VAE comes from a local
diffusers ``AutoencoderKL`` folder, ``model.vae``). The encoder's code is never run.

Skips. Each decoder entry named ``{res}x{res}_block{i}`` takes ``mp_cat(x, skip, t)`` with
``t = concat_balance``: ``cat([w_a x, w_b skip])``, ``w_a = C (1 - t) / sqrt(N_a)``,
``w_b = C t / sqrt(N_b)``, ``C = sqrt((N_a + N_b) / ((1 - t)^2 + t^2))``. The hook multiplies
the trailing ``N_b`` channels of that block's input by rho, so the block sees
``cat([w_a x, rho w_b skip])``: exactly ``mp_cat(x, rho skip, t)``, because mp_cat's weights
depend on channel counts, not on magnitudes. So rho scales the skip against its trained
weight ``w_b``, as in Skip-Tuning on a plain concatenation; it is not a change of ``t`` (that
would also rescale ``x``), and the result is no longer magnitude-preserving for rho != 1.
Blocks keep no ``in_channels``: it is the running channel count plus the popped skip, checked
against the block's first convolution.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..configuration.errors import ConfigError
from ..tuning.skips import SkipPoint
from .denoiser import Denoiser
from .edm import block_resolution
from .persistence import Unbuilt, read_nvlabs_pickle

EXPECTED = "an NVlabs EDM2"


def find_edm2_skips(net: nn.Module, prefix: str = "unet.") -> list[SkipPoint]:
    """Skips of an EDM2 ``UNet`` inside its ``Precond``, bottom (next to the bottleneck) first."""
    unet = net.unet
    if not all(isinstance(getattr(unet, n, None), nn.ModuleDict) for n in ("enc", "dec")):
        raise ValueError(f"{type(unet).__name__} has no enc/dec module dicts")
    top = block_resolution(next(iter(unet.enc)))
    stack = [int(block.out_channels) for block in unet.enc.values()]
    points, channels = [], stack[-1]
    for name, block in unet.dec.items():
        if "block" in name:
            skip_ch = stack.pop()
            in_ch = channels + skip_ch
            taken = block.conv_res0.weight.shape[1]
            if taken != in_ch:
                raise ValueError(f"dec.{name} takes {taken} channels, but mp_cat gives "
                                 f"{channels} + {skip_ch}")
            res = block_resolution(name)
            points.append(SkipPoint(len(points), round(math.log2(top / res)), res, skip_ch,
                                    in_ch, f"{prefix}dec.{name}"))
        channels = int(block.out_channels)
    if stack:
        raise ValueError(f"{len(stack)} encoder outputs were never consumed by the decoder")
    return points


class LatentDecoder(nn.Module):
    """EDM2's ``StabilityVAEEncoder.decode`` to images in [-1, 1]: undo the affine map, run
    the VAE decoder in chunks of ``batch_size``, clamp its [0, 1] pixels, rescale."""

    def __init__(self, vae: nn.Module, scale: np.ndarray, bias: np.ndarray,
                 batch_size: int) -> None:
        super().__init__()
        self.vae, self.batch_size = vae, int(batch_size)
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.float32))
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final latents to images in [-1, 1]."""
        raw = (x.to(torch.float32) - self.bias.reshape(1, -1, 1, 1)) / self.scale.reshape(
            1, -1, 1, 1)
        pixels = torch.cat([self.vae.decode(b).sample for b in raw.split(self.batch_size)])
        return pixels.clamp(0, 1) * 2 - 1


class EDM2Denoiser(Denoiser):
    """An EDM2 ``Precond`` as a Denoiser; latent models decode through the VAE.

    With a guiding network ``guide`` (autoguidance, Karras et al. 2024: a smaller or
    less-trained model of the same data), D = D_guide + w (D - D_guide) for ``guidance_scale``
    w != 1, as EDM2's ``generate_images`` lerps them; the skips are the main network's.
    """

    def __init__(self, net: nn.Module, decoder: LatentDecoder | None = None,
                 guide: nn.Module | None = None, guidance_scale: float = 1.0) -> None:
        super().__init__()
        self.net, self.decoder, self.guide = net, decoder, guide
        self.guidance_scale = float(guidance_scale)
        self.img_channels = int(net.img_channels)
        self.img_resolution = int(net.img_resolution)
        self.label_dim = int(net.label_dim)
        self.sigma_data = float(net.sigma_data)
        self.skips = find_edm2_skips(net, prefix="net.unet.")

    def forward(self, x: torch.Tensor, sigma: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x; sigma) from the Precond's own EDM preconditioning, in float32 (guided if set)."""
        x, sigma = x.to(torch.float32), sigma.to(torch.float32)
        denoised = self.net(x, sigma, class_labels).to(torch.float32)
        if self.guide is None or self.guidance_scale == 1.0:
            return denoised
        reference = self.guide(x, sigma, class_labels).to(torch.float32)
        return reference.lerp(denoised, self.guidance_scale)

    @property
    def can_guide(self) -> bool:
        """With a guiding network: autoguidance weights apply."""
        return self.guide is not None

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents through the VAE; pixel models return x unchanged."""
        return x if self.decoder is None else self.decoder(x)

    @property
    def image_channels(self) -> int:
        """3 for latent models (decoded RGB), else the sampled channels."""
        return self.img_channels if self.decoder is None else 3


def read_edm2_pickle(path: Path, trust: bool) -> tuple[nn.Module, object]:
    """The ``ema`` network and the ``encoder`` record of an EDM2 snapshot."""
    data = read_nvlabs_pickle(path, trust, EXPECTED)
    net = data.get("ema") if isinstance(data, dict) else None
    if not isinstance(net, nn.Module) or not isinstance(getattr(net, "unet", None), nn.Module):
        raise ConfigError("model.path", str(path), "expected an NVlabs EDM2 snapshot: an "
                          "EasyDict whose 'ema' entry is a Precond with a 'unet', found "
                          f"{type(net if net is not None else data).__name__}")
    return net, data.get("encoder")


def _latent_decoder(encoder: Unbuilt, vae_path: str | None, path: Path) -> LatentDecoder:
    """The VAE decoder of a latent snapshot, from the local folder ``vae_path``."""
    if not vae_path:
        raise ConfigError("model.vae", vae_path, f"{path.name} samples Stable Diffusion VAE "
                          f"latents ({encoder.state.get('vae_name')}); give the local folder "
                          "of that diffusers AutoencoderKL: model.vae=PATH")
    try:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(str(vae_path), local_files_only=True)
    except Exception as err:
        raise ConfigError("model.vae", vae_path, "expected a local diffusers AutoencoderKL "
                          f"folder (config.json and weights) ({type(err).__name__})") from None
    state = encoder.state
    return LatentDecoder(vae.eval().requires_grad_(False), state["scale"], state["bias"],
                         state.get("batch_size", 8))


def load_edm2_denoiser(path: Path, trust: bool, vae_path: str | None = None,
                       guide_path: str | None = None,
                       guidance_scale: float = 1.0) -> EDM2Denoiser:
    """The EDM2 network at ``path`` as a Denoiser in eval mode (weights as stored).

    ``guide_path``: a second snapshot of the same data as the guiding network of autoguidance.
    """
    net, encoder = read_edm2_pickle(path, trust)
    guide = None
    if guide_path:
        guide, _ = read_edm2_pickle(Path(guide_path), trust)
        for attr in ("img_channels", "img_resolution", "label_dim"):
            if getattr(guide, attr, None) != getattr(net, attr, None):
                raise ConfigError("model.guide_path", str(guide_path), f"its {attr} is "
                                  f"{getattr(guide, attr, None)} and the model's "
                                  f"{getattr(net, attr, None)}; a guiding network models the "
                                  "same data")
    decoder = None
    name = encoder.class_name if isinstance(encoder, Unbuilt) else "StandardRGBEncoder"
    if name == "StabilityVAEEncoder":
        decoder = _latent_decoder(encoder, vae_path, path)
    elif name != "StandardRGBEncoder":
        raise ConfigError("model.path", str(path), "expected an EDM2 encoder "
                          f"StandardRGBEncoder or StabilityVAEEncoder, found {name}")
    try:
        denoiser = EDM2Denoiser(net, decoder, guide, guidance_scale)
    except (AttributeError, ValueError, TypeError, KeyError) as err:
        raise ConfigError("model.path", str(path), "expected an NVlabs EDM2 network "
                          "(img_channels, img_resolution, label_dim, sigma_data on Precond; "
                          f"enc/dec blocks in its UNet), but {err}") from None
    return denoiser.eval().requires_grad_(False)
