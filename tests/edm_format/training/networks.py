"""Test stand-in for EDM's ``training/networks.py`` (Karras et al. 2022), written for skipsearch.

The classes keep the names, constructor arguments, attributes, buffers and submodule names of
EDM's persistent classes and compute the same functions: DDPM++ and NCSN++ (``SongUNet``),
ADM (``DhariwalUNet``) and the VP, VE, iDDPM and EDM preconditionings (Table 1 of the paper).
Nothing more: the UNets keep no image resolution, only the wrappers do. This file's text is
embedded in every pickle it produces, as EDM's own module text is.
"""

import numpy as np
import torch
from torch.nn.functional import silu
from torch_utils import persistence


def weight_init(shape, mode, fan_in, fan_out):
    """Random initial weights by one of EDM's four named schemes."""
    uniform = torch.rand(*shape) * 2 - 1
    if mode == "xavier_uniform":
        return uniform * np.sqrt(6 / (fan_in + fan_out))
    if mode == "xavier_normal":
        return torch.randn(*shape) * np.sqrt(2 / (fan_in + fan_out))
    if mode == "kaiming_uniform":
        return uniform * np.sqrt(3 / fan_in)
    if mode == "kaiming_normal":
        return torch.randn(*shape) * np.sqrt(1 / fan_in)
    raise ValueError(f"unknown init mode {mode!r}")


@persistence.persistent_class
class Linear(torch.nn.Module):
    def __init__(self, in_features, out_features, bias=True, init_mode="kaiming_normal",
                 init_weight=1, init_bias=0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        fans = {"mode": init_mode, "fan_in": in_features, "fan_out": out_features}
        self.weight = torch.nn.Parameter(
            weight_init([out_features, in_features], **fans) * init_weight)
        self.bias = (torch.nn.Parameter(weight_init([out_features], **fans) * init_bias)
                     if bias else None)

    def forward(self, x):
        y = x @ self.weight.to(x.dtype).t()
        return y if self.bias is None else y.add_(self.bias.to(x.dtype))


@persistence.persistent_class
class Conv2d(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel, bias=True, up=False, down=False,
                 resample_filter=[1, 1], fused_resample=False, init_mode="kaiming_normal",
                 init_weight=1, init_bias=0):
        assert not (up and down)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.fused_resample = fused_resample
        k2 = kernel * kernel
        fans = {"mode": init_mode, "fan_in": in_channels * k2, "fan_out": out_channels * k2}
        self.weight = (torch.nn.Parameter(weight_init([out_channels, in_channels, kernel, kernel],
                                                      **fans) * init_weight)
                       if kernel else None)
        self.bias = (torch.nn.Parameter(weight_init([out_channels], **fans) * init_bias)
                     if kernel and bias else None)
        taps = torch.as_tensor(resample_filter, dtype=torch.float32)
        taps = torch.outer(taps, taps)[None, None] / taps.sum().square()
        self.register_buffer("resample_filter", taps if up or down else None)

    def _up(self, x, f, pad):
        kernel = (f * 4).tile([self.in_channels, 1, 1, 1])
        return torch.nn.functional.conv_transpose2d(x, kernel, groups=self.in_channels,
                                                    stride=2, padding=pad)

    def _down(self, x, f, pad, channels):
        kernel = f.tile([channels, 1, 1, 1])
        return torch.nn.functional.conv2d(x, kernel, groups=channels, stride=2, padding=pad)

    def forward(self, x):
        w = None if self.weight is None else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        f = None if self.resample_filter is None else self.resample_filter.to(x.dtype)
        w_pad = 0 if w is None else w.shape[-1] // 2
        f_pad = 0 if f is None else (f.shape[-1] - 1) // 2
        if self.fused_resample and self.up and w is not None:
            x = self._up(x, f, max(f_pad - w_pad, 0))
            x = torch.nn.functional.conv2d(x, w, padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = torch.nn.functional.conv2d(x, w, padding=w_pad + f_pad)
            x = self._down(x, f, 0, self.out_channels)
        else:
            if self.up:
                x = self._up(x, f, f_pad)
            if self.down:
                x = self._down(x, f, f_pad, self.in_channels)
            if w is not None:
                x = torch.nn.functional.conv2d(x, w, padding=w_pad)
        return x if b is None else x.add_(b.reshape(1, -1, 1, 1))


@persistence.persistent_class
class GroupNorm(torch.nn.Module):
    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        self.num_groups = min(num_groups, num_channels // min_channels_per_group)
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(num_channels))
        self.bias = torch.nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return torch.nn.functional.group_norm(x, num_groups=self.num_groups,
                                              weight=self.weight.to(x.dtype),
                                              bias=self.bias.to(x.dtype), eps=self.eps)


def attention_weights(q, k):
    """softmax over k of q^T k / sqrt(channels), computed in float32."""
    scaled = (k / np.sqrt(k.shape[1])).to(torch.float32)
    logits = torch.einsum("ncq,nck->nqk", q.to(torch.float32), scaled)
    return logits.softmax(dim=2).to(q.dtype)


@persistence.persistent_class
class UNetBlock(torch.nn.Module):
    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False,
                 attention=False, num_heads=None, channels_per_head=64, dropout=0,
                 skip_scale=1, eps=1e-5, resample_filter=[1, 1], resample_proj=False,
                 adaptive_scale=True, init=None, init_zero=None, init_attn=None):
        super().__init__()
        init = init or {}
        init_zero = init_zero if init_zero is not None else {"init_weight": 0}
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.emb_channels = emb_channels
        if not attention:
            self.num_heads = 0
        else:
            self.num_heads = num_heads if num_heads is not None else (
                out_channels // channels_per_head)
        self.dropout = dropout
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale
        self.norm0 = GroupNorm(num_channels=in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels=in_channels, out_channels=out_channels, kernel=3,
                            up=up, down=down, resample_filter=resample_filter, **init)
        self.affine = Linear(in_features=emb_channels,
                             out_features=out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(num_channels=out_channels, eps=eps)
        self.conv1 = Conv2d(in_channels=out_channels, out_channels=out_channels, kernel=3,
                            **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if resample_proj or out_channels != in_channels else 0
            self.skip = Conv2d(in_channels=in_channels, out_channels=out_channels,
                               kernel=kernel, up=up, down=down,
                               resample_filter=resample_filter, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(num_channels=out_channels, eps=eps)
            self.qkv = Conv2d(in_channels=out_channels, out_channels=out_channels * 3,
                              kernel=1, **(init if init_attn is None else init_attn))
            self.proj = Conv2d(in_channels=out_channels, out_channels=out_channels, kernel=1,
                               **init_zero)

    def forward(self, x, emb):
        residual = x
        x = self.conv0(silu(self.norm0(x)))
        params = self.affine(emb)[:, :, None, None].to(x.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(chunks=2, dim=1)
            x = silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        else:
            x = silu(self.norm1(x.add_(params)))
        x = torch.nn.functional.dropout(x, p=self.dropout, training=self.training)
        x = self.conv1(x)
        x = x.add_(residual if self.skip is None else self.skip(residual))
        x = x * self.skip_scale
        if self.num_heads:
            heads = self.qkv(self.norm2(x))
            heads = heads.reshape(x.shape[0] * self.num_heads, x.shape[1] // self.num_heads, 3,
                                  -1)
            q, k, v = heads.unbind(2)
            a = torch.einsum("nqk,nck->ncq", attention_weights(q, k), v)
            x = self.proj(a.reshape(*x.shape)).add_(x)
            x = x * self.skip_scale
        return x


@persistence.persistent_class
class PositionalEmbedding(torch.nn.Module):
    def __init__(self, num_channels, max_positions=10000, endpoint=False):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions
        self.endpoint = endpoint

    def forward(self, x):
        half = self.num_channels // 2
        freqs = torch.arange(start=0, end=half, dtype=torch.float32, device=x.device)
        freqs = (1 / self.max_positions) ** (freqs / (half - (1 if self.endpoint else 0)))
        x = x.ger(freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


@persistence.persistent_class
class FourierEmbedding(torch.nn.Module):
    def __init__(self, num_channels, scale=16):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x):
        x = x.ger((2 * np.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


def drop_labels(module, labels, batch, device):
    """Class labels zeroed per image with probability ``label_dropout`` while training."""
    if not (module.training and module.label_dropout):
        return labels
    keep = torch.rand([batch, 1], device=device) >= module.label_dropout
    return labels * keep.to(labels.dtype)


@persistence.persistent_class
class SongUNet(torch.nn.Module):
    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0,
                 model_channels=128, channel_mult=[1, 2, 2, 2], channel_mult_emb=4,
                 num_blocks=4, attn_resolutions=[16], dropout=0.10, label_dropout=0,
                 embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                 decoder_type="standard", resample_filter=[1, 1]):
        assert embedding_type in ("fourier", "positional")
        assert encoder_type in ("standard", "skip", "residual")
        assert decoder_type in ("standard", "skip")
        super().__init__()
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        noise_channels = model_channels * channel_mult_noise
        init = {"init_mode": "xavier_uniform"}
        init_zero = {"init_mode": "xavier_uniform", "init_weight": 1e-5}
        init_attn = {"init_mode": "xavier_uniform", "init_weight": np.sqrt(0.2)}
        blocks = {"emb_channels": emb_channels, "num_heads": 1, "dropout": dropout,
                  "skip_scale": np.sqrt(0.5), "eps": 1e-6, "resample_filter": resample_filter,
                  "resample_proj": True, "adaptive_scale": False, "init": init,
                  "init_zero": init_zero, "init_attn": init_attn}
        if embedding_type == "positional":
            self.map_noise = PositionalEmbedding(num_channels=noise_channels, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(num_channels=noise_channels)
        self.map_label = (Linear(in_features=label_dim, out_features=noise_channels, **init)
                          if label_dim else None)
        self.map_augment = (Linear(in_features=augment_dim, out_features=noise_channels,
                                   bias=False, **init) if augment_dim else None)
        self.map_layer0 = Linear(in_features=noise_channels, out_features=emb_channels, **init)
        self.map_layer1 = Linear(in_features=emb_channels, out_features=emb_channels, **init)

        self.enc = torch.nn.ModuleDict()
        cout = caux = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cout, cin = model_channels, cout
                self.enc[f"{res}x{res}_conv"] = Conv2d(in_channels=cin, out_channels=cout,
                                                       kernel=3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                          down=True, **blocks)
                if encoder_type == "skip":
                    self.enc[f"{res}x{res}_aux_down"] = Conv2d(
                        in_channels=caux, out_channels=caux, kernel=0, down=True,
                        resample_filter=resample_filter)
                    self.enc[f"{res}x{res}_aux_skip"] = Conv2d(
                        in_channels=caux, out_channels=cout, kernel=1, **init)
                if encoder_type == "residual":
                    self.enc[f"{res}x{res}_aux_residual"] = Conv2d(
                        in_channels=caux, out_channels=cout, kernel=3, down=True,
                        resample_filter=resample_filter, fused_resample=True, **init)
                    caux = cout
            for idx in range(num_blocks):
                cout, cin = model_channels * mult, cout
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(
                    in_channels=cin, out_channels=cout, attention=res in attn_resolutions,
                    **blocks)
        skips = [b.out_channels for name, b in self.enc.items() if "aux" not in name]

        self.dec = torch.nn.ModuleDict()
        top = len(channel_mult) - 1
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == top:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                         attention=True, **blocks)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                         **blocks)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                        up=True, **blocks)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(
                    in_channels=cin, out_channels=cout,
                    attention=idx == num_blocks and res in attn_resolutions, **blocks)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < top:
                    self.dec[f"{res}x{res}_aux_up"] = Conv2d(
                        in_channels=out_channels, out_channels=out_channels, kernel=0, up=True,
                        resample_filter=resample_filter)
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(num_channels=cout, eps=1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(in_channels=cout,
                                                           out_channels=out_channels,
                                                           kernel=3, **init_zero)

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # sin first
        if self.map_label is not None:
            labels = drop_labels(self, class_labels, x.shape[0], x.device)
            emb = emb + self.map_label(labels * np.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = silu(self.map_layer1(silu(self.map_layer0(emb))))

        skips, aux = [], x
        for name, block in self.enc.items():
            if "aux_down" in name:
                aux = block(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + block(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + block(aux)) / np.sqrt(2)
            else:
                x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
                skips.append(x)

        aux = tmp = None
        for name, block in self.dec.items():
            if "aux_up" in name:
                aux = block(aux)
            elif "aux_norm" in name:
                tmp = block(x)
            elif "aux_conv" in name:
                tmp = block(silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != block.in_channels:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = block(x, emb)
        return aux


@persistence.persistent_class
class DhariwalUNet(torch.nn.Module):
    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0,
                 model_channels=192, channel_mult=[1, 2, 3, 4], channel_mult_emb=4,
                 num_blocks=3, attn_resolutions=[32, 16, 8], dropout=0.10, label_dropout=0):
        super().__init__()
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        init = {"init_mode": "kaiming_uniform", "init_weight": np.sqrt(1 / 3),
                "init_bias": np.sqrt(1 / 3)}
        init_zero = {"init_mode": "kaiming_uniform", "init_weight": 0, "init_bias": 0}
        blocks = {"emb_channels": emb_channels, "channels_per_head": 64, "dropout": dropout,
                  "init": init, "init_zero": init_zero}
        self.map_noise = PositionalEmbedding(num_channels=model_channels)
        self.map_augment = (Linear(in_features=augment_dim, out_features=model_channels,
                                   bias=False, **init_zero) if augment_dim else None)
        self.map_layer0 = Linear(in_features=model_channels, out_features=emb_channels, **init)
        self.map_layer1 = Linear(in_features=emb_channels, out_features=emb_channels, **init)
        self.map_label = (Linear(in_features=label_dim, out_features=emb_channels, bias=False,
                                 init_mode="kaiming_normal", init_weight=np.sqrt(label_dim))
                          if label_dim else None)

        self.enc = torch.nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cout, cin = model_channels * mult, cout
                self.enc[f"{res}x{res}_conv"] = Conv2d(in_channels=cin, out_channels=cout,
                                                       kernel=3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                          down=True, **blocks)
            for idx in range(num_blocks):
                cout, cin = model_channels * mult, cout
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(
                    in_channels=cin, out_channels=cout, attention=res in attn_resolutions,
                    **blocks)
        skips = [block.out_channels for block in self.enc.values()]

        self.dec = torch.nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                         attention=True, **blocks)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                         **blocks)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(in_channels=cout, out_channels=cout,
                                                        up=True, **blocks)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(
                    in_channels=cin, out_channels=cout, attention=res in attn_resolutions,
                    **blocks)
        self.out_norm = GroupNorm(num_channels=cout)
        self.out_conv = Conv2d(in_channels=cout, out_channels=out_channels, kernel=3,
                               **init_zero)

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        emb = self.map_noise(noise_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = self.map_layer1(silu(self.map_layer0(emb)))
        if self.map_label is not None:
            emb = emb + self.map_label(drop_labels(self, class_labels, x.shape[0], x.device))
        emb = silu(emb)

        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for block in self.dec.values():
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(silu(self.out_norm(x)))


def _precond_inputs(net, x, sigma, class_labels, force_fp32):
    """x and sigma in float32, the labels (zeros when missing) and the model's dtype."""
    x = x.to(torch.float32)
    sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
    if net.label_dim == 0:
        class_labels = None
    elif class_labels is None:
        class_labels = torch.zeros([1, net.label_dim], device=x.device)
    else:
        class_labels = class_labels.to(torch.float32).reshape(-1, net.label_dim)
    fp16 = net.use_fp16 and not force_fp32 and x.device.type == "cuda"
    return x, sigma, class_labels, torch.float16 if fp16 else torch.float32


def _run_model(net, x, c_in, c_noise, class_labels, dtype, model_kwargs):
    """F(c_in x; c_noise) at ``dtype``."""
    F_x = net.model((c_in * x).to(dtype), c_noise.flatten(), class_labels=class_labels,
                    **model_kwargs)
    assert F_x.dtype == dtype
    return F_x


@persistence.persistent_class
class VPPrecond(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, beta_d=19.9,
                 beta_min=0.1, M=1000, epsilon_t=1e-5, model_type="SongUNet", **model_kwargs):
        super().__init__()
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16
        self.beta_d = beta_d
        self.beta_min = beta_min
        self.M = M
        self.epsilon_t = epsilon_t
        self.sigma_min = float(self.sigma(epsilon_t))
        self.sigma_max = float(self.sigma(1))
        self.model = globals()[model_type](img_resolution=img_resolution,
                                           in_channels=img_channels, out_channels=img_channels,
                                           label_dim=label_dim, **model_kwargs)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x, sigma, class_labels, dtype = _precond_inputs(self, x, sigma, class_labels,
                                                        force_fp32)
        c_skip, c_out = 1, -sigma
        c_in = 1 / (sigma ** 2 + 1).sqrt()
        c_noise = (self.M - 1) * self.sigma_inv(sigma)
        F_x = _run_model(self, x, c_in, c_noise, class_labels, dtype, model_kwargs)
        return c_skip * x + c_out * F_x.to(torch.float32)

    def sigma(self, t):
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * (t ** 2) + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        root = (self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()).sqrt()
        return (root - self.beta_min) / self.beta_d

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)


@persistence.persistent_class
class VEPrecond(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False,
                 sigma_min=0.02, sigma_max=100, model_type="SongUNet", **model_kwargs):
        super().__init__()
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.model = globals()[model_type](img_resolution=img_resolution,
                                           in_channels=img_channels, out_channels=img_channels,
                                           label_dim=label_dim, **model_kwargs)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x, sigma, class_labels, dtype = _precond_inputs(self, x, sigma, class_labels,
                                                        force_fp32)
        c_skip, c_out, c_in = 1, sigma, 1
        c_noise = (0.5 * sigma).log()
        F_x = _run_model(self, x, c_in, c_noise, class_labels, dtype, model_kwargs)
        return c_skip * x + c_out * F_x.to(torch.float32)

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)


@persistence.persistent_class
class iDDPMPrecond(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, C_1=0.001,
                 C_2=0.008, M=1000, model_type="DhariwalUNet", **model_kwargs):
        super().__init__()
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16
        self.C_1 = C_1
        self.C_2 = C_2
        self.M = M
        self.model = globals()[model_type](img_resolution=img_resolution,
                                           in_channels=img_channels,
                                           out_channels=img_channels * 2, label_dim=label_dim,
                                           **model_kwargs)
        u = torch.zeros(M + 1)
        for j in range(M, 0, -1):
            ratio = (self.alpha_bar(j - 1) / self.alpha_bar(j)).clip(min=C_1)
            u[j - 1] = ((u[j] ** 2 + 1) / ratio - 1).sqrt()
        self.register_buffer("u", u)
        self.sigma_min = float(u[M - 1])
        self.sigma_max = float(u[0])

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x, sigma, class_labels, dtype = _precond_inputs(self, x, sigma, class_labels,
                                                        force_fp32)
        c_skip, c_out = 1, -sigma
        c_in = 1 / (sigma ** 2 + 1).sqrt()
        c_noise = self.M - 1 - self.round_sigma(sigma, return_index=True).to(torch.float32)
        F_x = _run_model(self, x, c_in, c_noise, class_labels, dtype, model_kwargs)
        return c_skip * x + c_out * F_x[:, :self.img_channels].to(torch.float32)

    def alpha_bar(self, j):
        j = torch.as_tensor(j)
        return (0.5 * np.pi * j / self.M / (self.C_2 + 1)).sin() ** 2

    def round_sigma(self, sigma, return_index=False):
        sigma = torch.as_tensor(sigma)
        levels = sigma.to(self.u.device).to(torch.float32).reshape(1, -1, 1)
        index = torch.cdist(levels, self.u.reshape(1, -1, 1)).argmin(2)
        result = index if return_index else self.u[index.flatten()].to(sigma.dtype)
        return result.reshape(sigma.shape).to(sigma.device)


@persistence.persistent_class
class EDMPrecond(torch.nn.Module):
    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0,
                 sigma_max=float("inf"), sigma_data=0.5, model_type="DhariwalUNet",
                 **model_kwargs):
        super().__init__()
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.sigma_data = sigma_data
        self.model = globals()[model_type](img_resolution=img_resolution,
                                           in_channels=img_channels, out_channels=img_channels,
                                           label_dim=label_dim, **model_kwargs)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x, sigma, class_labels, dtype = _precond_inputs(self, x, sigma, class_labels,
                                                        force_fp32)
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = sigma.log() / 4
        F_x = _run_model(self, x, c_in, c_noise, class_labels, dtype, model_kwargs)
        return c_skip * x + c_out * F_x.to(torch.float32)

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)
