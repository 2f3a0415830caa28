"""Test stand-in for EDM2's ``training/networks_edm2.py`` (Karras et al. 2024), for skipsearch.

The magnitude-preserving UNet and its preconditioning with EDM2's class names, constructor
arguments, attributes and submodule names, computing the same functions (Sec. 3 and App. B
of the paper). Decoder blocks take ``mp_cat(x, skip)``; blocks keep ``out_channels`` only.
This file's text is embedded in every pickle it produces, as EDM2's own module text is.
"""

import numpy as np
import torch
from torch_utils import misc, persistence


def normalize(x, dim=None, eps=1e-4):
    """x over its norm along ``dim``, the norm rescaled to unit mean square (plus eps)."""
    dims = list(range(1, x.ndim)) if dim is None else dim
    norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=np.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def resample(x, f=[1, 1], mode="keep"):
    """2x up- or downsampling with the separable filter ``f`` ('keep' returns x)."""
    if mode == "keep":
        return x
    taps = np.float32(f)
    assert taps.ndim == 1 and len(taps) % 2 == 0
    pad = (len(taps) - 1) // 2
    taps = taps / taps.sum()
    kernel = misc.const_like(x, np.outer(taps, taps)[np.newaxis, np.newaxis, :, :])
    c = x.shape[1]
    if mode == "down":
        return torch.nn.functional.conv2d(x, kernel.tile([c, 1, 1, 1]), groups=c, stride=2,
                                          padding=(pad,))
    assert mode == "up"
    return torch.nn.functional.conv_transpose2d(x, (kernel * 4).tile([c, 1, 1, 1]), groups=c,
                                                stride=2, padding=(pad,))


def mp_silu(x):
    """SiLU divided by its output magnitude for unit-variance input."""
    return torch.nn.functional.silu(x) / 0.596


def mp_sum(a, b, t=0.5):
    """(1 - t) a + t b, rescaled to keep unit magnitude."""
    return a.lerp(b, t) / np.sqrt((1 - t) ** 2 + t ** 2)


def mp_cat(a, b, dim=1, t=0.5):
    """Concatenation weighting a by (1 - t) and b by t per channel count, unit magnitude."""
    Na, Nb = a.shape[dim], b.shape[dim]
    C = np.sqrt((Na + Nb) / ((1 - t) ** 2 + t ** 2))
    wa = C / np.sqrt(Na) * (1 - t)
    wb = C / np.sqrt(Nb) * t
    return torch.cat([wa * a, wb * b], dim=dim)


@persistence.persistent_class
class MPFourier(torch.nn.Module):
    def __init__(self, num_channels, bandwidth=1):
        super().__init__()
        self.register_buffer("freqs", 2 * np.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer("phases", 2 * np.pi * torch.rand(num_channels))

    def forward(self, x):
        y = x.to(torch.float32).ger(self.freqs.to(torch.float32))
        y = (y + self.phases.to(torch.float32)).cos() * np.sqrt(2)
        return y.to(x.dtype)


@persistence.persistent_class
class MPConv(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel):
        super().__init__()
        self.out_channels = out_channels
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def forward(self, x, gain=1):
        w = self.weight.to(torch.float32)
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(w))  # forced weight normalization
        w = normalize(w)
        w = (w * (gain / np.sqrt(w[0].numel()))).to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        assert w.ndim == 4
        return torch.nn.functional.conv2d(x, w, padding=(w.shape[-1] // 2,))


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
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.dropout = dropout
        self.res_balance = res_balance
        self.attn_balance = attn_balance
        self.clip_act = clip_act
        self.emb_gain = torch.nn.Parameter(torch.zeros([]))
        res0_in = out_channels if flavor == "enc" else in_channels
        self.conv_res0 = MPConv(res0_in, out_channels, kernel=[3, 3])
        self.emb_linear = MPConv(emb_channels, out_channels, kernel=[])
        self.conv_res1 = MPConv(out_channels, out_channels, kernel=[3, 3])
        self.conv_skip = (MPConv(in_channels, out_channels, kernel=[1, 1])
                          if in_channels != out_channels else None)
        self.attn_qkv = (MPConv(out_channels, out_channels * 3, kernel=[1, 1])
                         if self.num_heads != 0 else None)
        self.attn_proj = (MPConv(out_channels, out_channels, kernel=[1, 1])
                          if self.num_heads != 0 else None)

    def forward(self, x, emb):
        x = resample(x, f=self.resample_filter, mode=self.resample_mode)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = mp_silu(y * c[:, :, None, None].to(y.dtype))
        if self.training and self.dropout != 0:
            y = torch.nn.functional.dropout(y, p=self.dropout)
        y = self.conv_res1(y)
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, t=self.res_balance)
        if self.num_heads != 0:
            y = self.attn_qkv(x)
            y = y.reshape(y.shape[0], self.num_heads, -1, 3, y.shape[2] * y.shape[3])
            q, k, v = normalize(y, dim=2).unbind(3)
            w = torch.einsum("nhcq,nhck->nhqk", q, k / np.sqrt(q.shape[2])).softmax(dim=3)
            y = torch.einsum("nhqk,nhck->nhcq", w, v)
            x = mp_sum(x, self.attn_proj(y.reshape(*x.shape)), t=self.attn_balance)
        if self.clip_act is not None:
            x = x.clip_(-self.clip_act, self.clip_act)
        return x


@persistence.persistent_class
class UNet(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim, model_channels=192,
                 channel_mult=[1, 2, 3, 4], channel_mult_noise=None, channel_mult_emb=None,
                 num_blocks=3, attn_resolutions=[16, 8], label_balance=0.5,
                 concat_balance=0.5, **block_kwargs):
        super().__init__()
        cblock = [model_channels * m for m in channel_mult]
        cnoise = (model_channels * channel_mult_noise if channel_mult_noise is not None
                  else cblock[0])
        cemb = model_channels * channel_mult_emb if channel_mult_emb is not None else max(cblock)
        self.label_balance = label_balance
        self.concat_balance = concat_balance
        self.out_gain = torch.nn.Parameter(torch.zeros([]))
        self.emb_fourier = MPFourier(cnoise)
        self.emb_noise = MPConv(cnoise, cemb, kernel=[])
        self.emb_label = MPConv(label_dim, cemb, kernel=[]) if label_dim != 0 else None

        self.enc = torch.nn.ModuleDict()
        cout = img_channels + 1
        for level, channels in enumerate(cblock):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, channels
                self.enc[f"{res}x{res}_conv"] = MPConv(cin, cout, kernel=[3, 3])
            else:
                self.enc[f"{res}x{res}_down"] = Block(cout, cout, cemb, flavor="enc",
                                                      resample_mode="down", **block_kwargs)
            for idx in range(num_blocks):
                cin, cout = cout, channels
                self.enc[f"{res}x{res}_block{idx}"] = Block(
                    cin, cout, cemb, flavor="enc", attention=res in attn_resolutions,
                    **block_kwargs)

        self.dec = torch.nn.ModuleDict()
        skips = [block.out_channels for block in self.enc.values()]
        for level, channels in reversed(list(enumerate(cblock))):
            res = img_resolution >> level
            if level == len(cblock) - 1:
                self.dec[f"{res}x{res}_in0"] = Block(cout, cout, cemb, flavor="dec",
                                                     attention=True, **block_kwargs)
                self.dec[f"{res}x{res}_in1"] = Block(cout, cout, cemb, flavor="dec",
                                                     **block_kwargs)
            else:
                self.dec[f"{res}x{res}_up"] = Block(cout, cout, cemb, flavor="dec",
                                                    resample_mode="up", **block_kwargs)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), channels
                self.dec[f"{res}x{res}_block{idx}"] = Block(
                    cin, cout, cemb, flavor="dec", attention=res in attn_resolutions,
                    **block_kwargs)
        self.out_conv = MPConv(cout, img_channels, kernel=[3, 3])

    def forward(self, x, noise_labels, class_labels):
        emb = self.emb_noise(self.emb_fourier(noise_labels))
        if self.emb_label is not None:
            label_emb = self.emb_label(class_labels * np.sqrt(class_labels.shape[1]))
            emb = mp_sum(emb, label_emb, t=self.label_balance)
        emb = mp_silu(emb)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for name, block in self.enc.items():
            x = block(x) if "conv" in name else block(x, emb)
            skips.append(x)
        for name, block in self.dec.items():
            if "block" in name:
                x = mp_cat(x, skips.pop(), t=self.concat_balance)
            x = block(x, emb)
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

    def forward(self, x, sigma, class_labels=None, force_fp32=False, return_logvar=False,
                **unet_kwargs):
        x = x.to(torch.float32)
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            class_labels = None
        elif class_labels is None:
            class_labels = torch.zeros([1, self.label_dim], device=x.device)
        else:
            class_labels = class_labels.to(torch.float32).reshape(-1, self.label_dim)
        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if fp16 else torch.float32
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = sigma.flatten().log() / 4
        F_x = self.unet((c_in * x).to(dtype), c_noise, class_labels, **unet_kwargs)
        D_x = c_skip * x + c_out * F_x.to(torch.float32)
        if return_logvar:
            logvar = self.logvar_linear(self.logvar_fourier(c_noise)).reshape(-1, 1, 1, 1)
            return D_x, logvar
        return D_x
