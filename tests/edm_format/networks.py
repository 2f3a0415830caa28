"""EDM-format networks for tests: this file's text is embedded in the pickles it produces.

Written for skipsearch's tests from the EDM paper (Karras et al. 2022, Table 1 and App. F):
the module layout follows EDM's networks (``enc``/``dec`` module dicts keyed ``{res}x{res}_...``,
decoder blocks taking ``concat([x, skip])``, preconditioning wrappers holding ``model``), so a
loader that works on these works on EDM's published checkpoints. It imports
``torch_utils.persistence`` exactly as EDM's own module does, so it is never imported directly.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.functional import silu
from torch_utils import persistence


@persistence.persistent_class
class Linear(torch.nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / in_features**0.5)
        self.bias = torch.nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight.to(x.dtype),
                        None if self.bias is None else self.bias.to(x.dtype))


@persistence.persistent_class
class Conv2d(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel, up=False, down=False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.up, self.down = up, down
        fan_in = in_channels * kernel * kernel
        self.weight = torch.nn.Parameter(
            torch.randn(out_channels, in_channels, kernel, kernel) / fan_in**0.5
        ) if kernel else None
        self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if kernel else None

    def forward(self, x):
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            x = F.avg_pool2d(x, 2)
        if self.weight is not None:
            pad = self.weight.shape[-1] // 2
            x = F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), padding=pad)
        return x


@persistence.persistent_class
class GroupNorm(torch.nn.Module):
    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(num_channels))
        self.bias = torch.nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype),
                            self.eps)


@persistence.persistent_class
class UNetBlock(torch.nn.Module):
    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False,
                 attention=False, channels_per_head=64, skip_scale=1.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_heads = 0 if not attention else max(1, out_channels // channels_per_head)
        self.skip_scale = skip_scale
        self.norm0 = GroupNorm(in_channels)
        self.conv0 = Conv2d(in_channels, out_channels, 3, up=up, down=down)
        self.affine = Linear(emb_channels, out_channels * 2)
        self.norm1 = GroupNorm(out_channels)
        self.conv1 = Conv2d(out_channels, out_channels, 3)
        self.skip = None
        if out_channels != in_channels or up or down:
            self.skip = Conv2d(in_channels, out_channels, 1 if in_channels != out_channels
                               else 0, up=up, down=down)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels)
            self.qkv = Conv2d(out_channels, out_channels * 3, 1)
            self.proj = Conv2d(out_channels, out_channels, 1)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(silu(self.norm0(x)))
        scale, shift = self.affine(emb).unsqueeze(2).unsqueeze(3).chunk(2, dim=1)
        x = silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        x = self.conv1(x)
        x = (x + (self.skip(orig) if self.skip is not None else orig)) * self.skip_scale
        if self.num_heads:
            b, c, h, w = x.shape
            q, k, v = self.qkv(self.norm2(x)).reshape(b * self.num_heads, 3 * c // self.num_heads,
                                                      h * w).chunk(3, dim=1)
            attn = torch.einsum("nci,ncj->nij", q, k / (q.shape[1] ** 0.5)).softmax(dim=2)
            a = torch.einsum("nij,ncj->nci", attn, v).reshape(b, c, h, w)
            x = (self.proj(a) + x) * self.skip_scale
        return x


@persistence.persistent_class
class PositionalEmbedding(torch.nn.Module):
    def __init__(self, num_channels, max_positions=10000):
        super().__init__()
        self.num_channels, self.max_positions = num_channels, max_positions

    def forward(self, x):
        freqs = torch.arange(self.num_channels // 2, dtype=torch.float32, device=x.device)
        freqs = (1 / self.max_positions) ** (freqs / (self.num_channels // 2))
        x = x.float().ger(freqs)
        return torch.cat([x.cos(), x.sin()], dim=1)


class _UNetBase(torch.nn.Module):
    """Embedding, enc/dec construction and forward shared by both layouts."""

    def build(self, img_resolution, in_channels, out_channels, model_channels, channel_mult,
              num_blocks, attn_resolutions, emb_channels, song):
        """Encoder and decoder; ``song`` selects SongUNet's differences from DhariwalUNet."""
        self.enc = torch.nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels * (1 if song else mult)
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, 3)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, emb_channels, down=True)
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(
                    cin, cout, emb_channels, attention=(res in attn_resolutions))
        skips = [b.out_channels for b in self.enc.values()]
        self.dec = torch.nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, emb_channels, attention=True)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, emb_channels)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, emb_channels, up=True)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attend = res in attn_resolutions and (idx == num_blocks or not song)
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, emb_channels,
                                                                attention=attend)
            if song and level == 0:
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(cout)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, 3)
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, out_channels, 3)

    def embed(self, noise_labels, class_labels):
        emb = self.map_noise(noise_labels)
        emb = silu(self.map_layer0(emb))
        if self.map_label is not None and class_labels is not None:
            emb = emb + self.map_label(class_labels.to(emb.dtype))
        return silu(self.map_layer1(emb))

    def forward(self, x, noise_labels, class_labels):
        emb = self.embed(noise_labels, class_labels)
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for name, block in self.dec.items():
            if "aux" in name:
                continue
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(silu(self.out_norm(x)))


@persistence.persistent_class
class SongUNet(_UNetBase):
    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0,
                 model_channels=128, channel_mult=(1, 2, 2, 2), channel_mult_emb=4,
                 num_blocks=4, attn_resolutions=(16,)):
        super().__init__()
        emb_channels = model_channels * channel_mult_emb
        self.img_resolution = img_resolution
        self.map_noise = PositionalEmbedding(model_channels, max_positions=10000)
        self.map_label = Linear(label_dim, emb_channels) if label_dim else None
        self.map_layer0 = Linear(model_channels, emb_channels)
        self.map_layer1 = Linear(emb_channels, emb_channels)
        self.build(img_resolution, in_channels, out_channels, model_channels, channel_mult,
                   num_blocks, attn_resolutions, emb_channels, song=True)


@persistence.persistent_class
class DhariwalUNet(_UNetBase):
    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0,
                 model_channels=192, channel_mult=(1, 2, 3, 4), channel_mult_emb=4,
                 num_blocks=3, attn_resolutions=(32, 16, 8)):
        super().__init__()
        emb_channels = model_channels * channel_mult_emb
        self.img_resolution = img_resolution
        self.map_noise = PositionalEmbedding(model_channels)
        self.map_label = Linear(label_dim, emb_channels, bias=False) if label_dim else None
        self.map_layer0 = Linear(model_channels, emb_channels)
        self.map_layer1 = Linear(emb_channels, emb_channels)
        self.build(img_resolution, in_channels, out_channels, model_channels, channel_mult,
                   num_blocks, attn_resolutions, emb_channels, song=False)


class _Precond(torch.nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) with the coefficients of Table 1."""

    def setup(self, img_resolution, img_channels, label_dim, model_type, model_kwargs):
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.label_dim = label_dim
        self.model = globals()[model_type](img_resolution=img_resolution,
                                           in_channels=img_channels, out_channels=img_channels,
                                           label_dim=label_dim, **model_kwargs)

    def forward(self, x, sigma, class_labels=None):
        x = x.to(torch.float32)
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        class_labels = None if self.label_dim == 0 else (
            torch.zeros([1, self.label_dim], device=x.device) if class_labels is None
            else class_labels.to(torch.float32).reshape(-1, self.label_dim))
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        F_x = self.model(c_in * x, c_noise.flatten().expand(x.shape[0]), class_labels)
        return c_skip * x + c_out * F_x.to(torch.float32)


@persistence.persistent_class
class EDMPrecond(_Precond):
    def __init__(self, img_resolution, img_channels, label_dim=0, sigma_min=0,
                 sigma_max=float("inf"), sigma_data=0.5, model_type="DhariwalUNet",
                 **model_kwargs):
        super().__init__()
        self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, sigma_data
        self.setup(img_resolution, img_channels, label_dim, model_type, model_kwargs)

    def coefficients(self, sigma):
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + sigma**2).sqrt()
        return c_skip, c_out, c_in, sigma.log() / 4


@persistence.persistent_class
class VPPrecond(_Precond):
    def __init__(self, img_resolution, img_channels, label_dim=0, beta_d=19.9, beta_min=0.1,
                 M=1000, epsilon_t=1e-5, model_type="SongUNet", **model_kwargs):
        super().__init__()
        self.beta_d, self.beta_min, self.M, self.epsilon_t = beta_d, beta_min, M, epsilon_t
        self.setup(img_resolution, img_channels, label_dim, model_type, model_kwargs)

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min**2 + 2 * self.beta_d * (1 + sigma**2).log()).sqrt()
                - self.beta_min) / self.beta_d

    def coefficients(self, sigma):
        return (torch.ones_like(sigma), -sigma, 1 / (sigma**2 + 1).sqrt(),
                (self.M - 1) * self.sigma_inv(sigma))


@persistence.persistent_class
class VEPrecond(_Precond):
    def __init__(self, img_resolution, img_channels, label_dim=0, sigma_min=0.02,
                 sigma_max=100, model_type="SongUNet", **model_kwargs):
        super().__init__()
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.setup(img_resolution, img_channels, label_dim, model_type, model_kwargs)

    def coefficients(self, sigma):
        return torch.ones_like(sigma), sigma, torch.ones_like(sigma), (0.5 * sigma).log()


@persistence.persistent_class
class iDDPMPrecond(_Precond):  # noqa: N801 - the class name EDM uses
    def __init__(self, img_resolution, img_channels, label_dim=0, C_1=0.001, C_2=0.008,
                 M=1000, model_type="DhariwalUNet", **model_kwargs):
        super().__init__()
        self.C_1, self.C_2, self.M = C_1, C_2, M
        u = torch.zeros(M + 1)
        for j in range(M, 0, -1):
            alpha = lambda k: np.sin(0.5 * np.pi * k / M / (C_2 + 1)) ** 2  # noqa: E731
            u[j - 1] = ((u[j] ** 2 + 1) / max(alpha(j - 1) / alpha(j), C_1) - 1).sqrt()
        self.register_buffer("u", u)
        self.setup(img_resolution, img_channels, label_dim, model_type, model_kwargs)

    def coefficients(self, sigma):
        sd = 1.0
        c_noise = self.M - 1 - (sigma.reshape(-1, 1) - self.u.reshape(1, -1)).abs().argmin(1)
        return (torch.ones_like(sigma), -sigma, 1 / (sigma**2 + sd).sqrt(),
                c_noise.to(torch.float32).reshape(sigma.shape))
