"""Test stand-in for EDM2's ``training/networks_edm2.py`` (Karras et al. 2024), for skipsearch.

The magnitude-preserving UNet and its preconditioning with EDM2's class names, constructor
arguments, attributes and submodule names, computing the same functions (Sec. 3 and App. B
of the paper). Decoder blocks take ``mp_cat(x, skip)``; blocks keep ``out_channels`` only.
This file's text is embedded in every pickle it produces, as EDM2's own module text is.
"""

import numpy as np
import torch
from torch.nn import functional
from torch_utils import misc, persistence


def normalize(x, dim=None, eps=1e-4):
    """x over its norm along ``dim``, the norm rescaled to unit mean square (plus eps)."""
    axes = list(range(1, x.ndim)) if dim is None else dim
    length = torch.linalg.vector_norm(x, dim=axes, keepdim=True, dtype=torch.float32)
    ratio = np.sqrt(length.numel() / x.numel())
    length = torch.add(eps, length, alpha=ratio)
    return x / length.to(x.dtype)


def resample(x, f=[1, 1], mode="keep"):
    """2x up- or downsampling with the separable filter ``f`` ('keep' returns x)."""
    if mode == "keep":
        return x
    row = np.float32(f)
    assert row.ndim == 1 and len(row) % 2 == 0
    margin = (row.size - 1) // 2
    row = row / row.sum()
    taps = misc.const_like(x, np.outer(row, row)[None, None])
    groups = x.shape[1]
    if mode == "up":
        return functional.conv_transpose2d(x, (taps * 4).tile([groups, 1, 1, 1]),
                                           groups=groups, stride=2, padding=(margin,))
    assert mode == "down"
    return functional.conv2d(x, taps.tile([groups, 1, 1, 1]), groups=groups, stride=2,
                             padding=(margin,))


def mp_silu(x):
    """SiLU divided by its output magnitude for unit-variance input."""
    out = functional.silu(x)
    return out / 0.596


def _balance(t):
    """(1 - t)^2 + t^2, the squared magnitude of a t-weighted blend of two unit signals."""
    return (1 - t) ** 2 + t ** 2


def mp_sum(a, b, t=0.5):
    """(1 - t) a + t b, rescaled to keep unit magnitude."""
    blend = torch.lerp(a, b, t)
    return blend / np.sqrt(_balance(t))


def mp_cat(a, b, dim=1, t=0.5):
    """Concatenation weighting a by (1 - t) and b by t per channel count, unit magnitude."""
    n_a = a.shape[dim]
    n_b = b.shape[dim]
    total = np.sqrt((n_a + n_b) / _balance(t))
    parts = [total / np.sqrt(n_a) * (1 - t) * a, total / np.sqrt(n_b) * t * b]
    return torch.cat(parts, dim=dim)


@persistence.persistent_class
class MPFourier(torch.nn.Module):
    def __init__(self, num_channels, bandwidth=1):
        super().__init__()
        draws = torch.randn(num_channels)
        self.register_buffer("freqs", 2 * np.pi * draws * bandwidth)
        offsets = torch.rand(num_channels)
        self.register_buffer("phases", 2 * np.pi * offsets)

    def forward(self, x):
        f32 = torch.float32
        angle = torch.outer(x.to(f32), self.freqs.to(f32)) + self.phases.to(f32)
        return (angle.cos() * np.sqrt(2)).to(x.dtype)


@persistence.persistent_class
class MPConv(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel):
        super().__init__()
        self.out_channels = out_channels
        shape = [out_channels, in_channels, *kernel]
        self.weight = torch.nn.Parameter(torch.randn(shape))

    def forward(self, x, gain=1):
        raw = self.weight.to(torch.float32)
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(raw))  # forced weight normalization
        unit = normalize(raw)
        fan_in = unit[0].numel()
        kern = (unit * (gain / np.sqrt(fan_in))).to(x.dtype)
        if kern.ndim == 4:
            return functional.conv2d(x, kern, padding=(kern.shape[-1] // 2,))
        assert kern.ndim == 2
        return x @ kern.t()


@persistence.persistent_class
class Block(torch.nn.Module):
    def __init__(self, in_channels, out_channels, emb_channels, flavor="enc",
                 resample_mode="keep", resample_filter=[1, 1], attention=False,
                 channels_per_head=64, dropout=0, res_balance=0.3, attn_balance=0.3,
                 clip_act=256):
        super().__init__()
        self.out_channels = out_channels
        self.flavor = flavor
        self.resample_filter = resample_filter
        self.resample_mode = resample_mode
        self.num_heads = 0 if not attention else out_channels // channels_per_head
        self.dropout = dropout
        self.res_balance = res_balance
        self.attn_balance = attn_balance
        self.clip_act = clip_act
        self.emb_gain = torch.nn.Parameter(torch.tensor(0.0))
        square, point = [3, 3], [1, 1]
        first_in = in_channels if flavor != "enc" else out_channels
        self.conv_res0 = MPConv(first_in, out_channels, kernel=square)
        self.emb_linear = MPConv(emb_channels, out_channels, kernel=[])
        self.conv_res1 = MPConv(out_channels, out_channels, kernel=square)
        self.conv_skip = None
        if in_channels != out_channels:
            self.conv_skip = MPConv(in_channels, out_channels, kernel=point)
        self.attn_qkv = self.attn_proj = None
        if self.num_heads:
            self.attn_qkv = MPConv(out_channels, 3 * out_channels, kernel=point)
            self.attn_proj = MPConv(out_channels, out_channels, kernel=point)

    def _attention(self, x):
        qkv = self.attn_qkv(x)
        n, _, rows, cols = qkv.shape
        qkv = normalize(qkv.reshape(n, self.num_heads, -1, 3, rows * cols), dim=2)
        q, k, v = qkv.unbind(3)
        logits = torch.einsum("nhcq,nhck->nhqk", q, k / np.sqrt(q.shape[2]))
        mixed = torch.einsum("nhqk,nhck->nhcq", logits.softmax(dim=3), v)
        return self.attn_proj(mixed.reshape(x.shape))

    def forward(self, x, emb):
        x = resample(x, self.resample_filter, self.resample_mode)
        encoder = self.flavor == "enc"
        if encoder:
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
        h = self.conv_res0(mp_silu(x))
        modulation = 1 + self.emb_linear(emb, gain=self.emb_gain)
        h = mp_silu(h * modulation.unsqueeze(-1).unsqueeze(-1).to(h.dtype))
        if self.dropout and self.training:
            h = functional.dropout(h, p=self.dropout, training=True)
        h = self.conv_res1(h)
        if not encoder and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, h, t=self.res_balance)
        if self.num_heads:
            x = mp_sum(x, self._attention(x), t=self.attn_balance)
        if self.clip_act is not None:
            x.clamp_(min=-self.clip_act, max=self.clip_act)
        return x


@persistence.persistent_class
class UNet(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim, model_channels=192,
                 channel_mult=[1, 2, 3, 4], channel_mult_noise=None, channel_mult_emb=None,
                 num_blocks=3, attn_resolutions=[16, 8], label_balance=0.5,
                 concat_balance=0.5, **block_kwargs):
        super().__init__()
        widths = [m * model_channels for m in channel_mult]
        cnoise = widths[0]
        if channel_mult_noise is not None:
            cnoise = channel_mult_noise * model_channels
        cemb = max(widths)
        if channel_mult_emb is not None:
            cemb = channel_mult_emb * model_channels
        self.label_balance = label_balance
        self.concat_balance = concat_balance
        self.out_gain = torch.nn.Parameter(torch.tensor(0.0))
        self.emb_fourier = MPFourier(cnoise)
        self.emb_noise = MPConv(cnoise, cemb, kernel=[])
        self.emb_label = None if label_dim == 0 else MPConv(label_dim, cemb, kernel=[])

        def block(cin, cout, flavor, **extra):
            return Block(cin, cout, cemb, flavor=flavor, **extra, **block_kwargs)

        scales = [(i, img_resolution >> i, c) for i, c in enumerate(widths)]
        self.enc = torch.nn.ModuleDict()
        width = img_channels + 1
        for i, res, target in scales:
            tag = f"{res}x{res}"
            if i > 0:
                self.enc[tag + "_down"] = block(width, width, "enc", resample_mode="down")
            else:
                self.enc[tag + "_conv"] = MPConv(width, target, kernel=[3, 3])
                width = target
            for j in range(num_blocks):
                self.enc[f"{tag}_block{j}"] = block(width, target, "enc",
                                                    attention=res in attn_resolutions)
                width = target

        self.dec = torch.nn.ModuleDict()
        pending = [m.out_channels for m in self.enc.values()]
        for i, res, target in scales[::-1]:
            tag = f"{res}x{res}"
            if i < len(scales) - 1:
                self.dec[tag + "_up"] = block(width, width, "dec", resample_mode="up")
            else:
                self.dec[tag + "_in0"] = block(width, width, "dec", attention=True)
                self.dec[tag + "_in1"] = block(width, width, "dec")
            for j in range(num_blocks + 1):
                self.dec[f"{tag}_block{j}"] = block(width + pending.pop(), target, "dec",
                                                    attention=res in attn_resolutions)
                width = target
        self.out_conv = MPConv(width, img_channels, kernel=[3, 3])

    def forward(self, x, noise_labels, class_labels):
        waves = self.emb_fourier(noise_labels)
        emb = self.emb_noise(waves)
        if self.emb_label is not None:
            scaled = class_labels * np.sqrt(class_labels.shape[1])
            emb = mp_sum(emb, self.emb_label(scaled), t=self.label_balance)
        emb = mp_silu(emb)
        ones = torch.ones_like(x[:, :1])
        x = torch.cat((x, ones), dim=1)
        saved = []
        for key, module in self.enc.items():
            x = module(x) if key.endswith("_conv") else module(x, emb)
            saved.append(x)
        for key, module in self.dec.items():
            if "_block" in key:
                x = mp_cat(x, saved.pop(), t=self.concat_balance)
            x = module(x, emb)
        return self.out_conv(x, gain=self.out_gain)


@persistence.persistent_class
class Precond(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim, use_fp16=True, sigma_data=0.5,
                 logvar_channels=128, **unet_kwargs):
        super().__init__()
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16
        self.sigma_data = sigma_data
        self.unet = UNet(img_resolution=img_resolution, img_channels=img_channels,
                         label_dim=label_dim, **unet_kwargs)
        self.logvar_fourier = MPFourier(logvar_channels)
        self.logvar_linear = MPConv(logvar_channels, 1, kernel=[])

    def _labels(self, class_labels, device):
        if not self.label_dim:
            return None
        if class_labels is None:
            return torch.zeros([1, self.label_dim], device=device)
        return class_labels.to(torch.float32).reshape(-1, self.label_dim)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, return_logvar=False,
                **unet_kwargs):
        x = x.to(torch.float32)
        sigma = sigma.reshape(-1, 1, 1, 1).to(torch.float32)
        class_labels = self._labels(class_labels, x.device)
        half = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if half else torch.float32
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = torch.log(sigma.flatten()) / 4
        F_x = self.unet((c_in * x).to(dtype), c_noise, class_labels, **unet_kwargs)
        denoised = c_out * F_x.to(torch.float32) + c_skip * x
        if not return_logvar:
            return denoised
        logvar = self.logvar_linear(self.logvar_fourier(c_noise))
        return denoised, logvar.reshape(-1, 1, 1, 1)
