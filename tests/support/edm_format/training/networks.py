"""Test stand-in for EDM's ``training/networks.py`` (Karras et al. 2022), written for skipsearch.

The classes keep the names, constructor arguments, attributes, buffers and submodule names of
EDM's persistent classes and compute the same functions: DDPM++ and NCSN++ (``SongUNet``),
ADM (``DhariwalUNet``) and the VP, VE, iDDPM and EDM preconditionings (Table 1 of the paper).
Nothing more: the UNets keep no image resolution, only the wrappers do. This file's text is
embedded in every pickle it produces, as EDM's own module text is.
"""

import numpy as np
import torch
from torch.nn import functional
from torch_utils import persistence

silu = functional.silu


def weight_init(shape, mode, fan_in, fan_out):
    """Random initial weights by one of EDM's four named schemes."""
    centred = 2 * torch.rand(*shape) - 1
    bounds = {
        "xavier_uniform": (False, 6 / (fan_in + fan_out)),
        "xavier_normal": (True, 2 / (fan_in + fan_out)),
        "kaiming_uniform": (False, 3 / fan_in),
        "kaiming_normal": (True, 1 / fan_in),
    }
    if mode not in bounds:
        raise ValueError(f"unknown init mode {mode!r}")
    gaussian, variance = bounds[mode]
    draw = torch.randn(*shape) if gaussian else centred
    return draw * np.sqrt(variance)


def _param(values):
    return torch.nn.Parameter(values)


@persistence.persistent_class
class Linear(torch.nn.Module):
    def __init__(self, in_features, out_features, bias=True, init_mode="kaiming_normal",
                 init_weight=1, init_bias=0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        spec = dict(mode=init_mode, fan_in=in_features, fan_out=out_features)
        self.weight = _param(init_weight * weight_init([out_features, in_features], **spec))
        self.bias = _param(init_bias * weight_init([out_features], **spec)) if bias else None

    def forward(self, x):
        out = torch.matmul(x, self.weight.to(x.dtype).t())
        if self.bias is not None:
            out.add_(self.bias.to(x.dtype))
        return out


def _as(tensor, dtype):
    return tensor if tensor is None else tensor.to(dtype)


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
        area = kernel * kernel
        spec = dict(mode=init_mode, fan_in=area * in_channels, fan_out=area * out_channels)
        self.weight = None
        self.bias = None
        if kernel:
            shape = [out_channels, in_channels, kernel, kernel]
            self.weight = _param(init_weight * weight_init(shape, **spec))
            if bias:
                self.bias = _param(init_bias * weight_init([out_channels], **spec))
        row = torch.as_tensor(resample_filter, dtype=torch.float32)
        taps2d = row.ger(row).unsqueeze(0).unsqueeze(0) / row.sum().square()
        self.register_buffer("resample_filter", taps2d if (up or down) else None)

    def _up(self, x, f, pad):
        kernel = (f * 4).tile([self.in_channels, 1, 1, 1])
        return functional.conv_transpose2d(x, kernel, groups=self.in_channels, stride=2,
                                           padding=pad)

    def _down(self, x, f, pad, channels):
        kernel = f.tile([channels, 1, 1, 1])
        return functional.conv2d(x, kernel, groups=channels, stride=2, padding=pad)

    def forward(self, x):
        kern = _as(self.weight, x.dtype)
        offset = _as(self.bias, x.dtype)
        filt = _as(self.resample_filter, x.dtype)
        half_k = 0 if kern is None else kern.shape[-1] // 2
        half_f = 0 if filt is None else (filt.shape[-1] - 1) // 2
        fused = kern is not None and self.fused_resample
        if fused and self.up:
            x = functional.conv2d(self._up(x, filt, max(half_f - half_k, 0)), kern,
                                  padding=max(half_k - half_f, 0))
        elif fused and self.down:
            widened = functional.conv2d(x, kern, padding=half_k + half_f)
            x = self._down(widened, filt, 0, self.out_channels)
        else:
            if self.up:
                x = self._up(x, filt, half_f)
            elif self.down:
                x = self._down(x, filt, half_f, self.in_channels)
            if kern is not None:
                x = functional.conv2d(x, kern, padding=half_k)
        if offset is not None:
            x = x.add_(offset.reshape(1, -1, 1, 1))
        return x


@persistence.persistent_class
class GroupNorm(torch.nn.Module):
    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        self.num_groups = min(num_channels // min_channels_per_group, num_groups)
        self.eps = eps
        self.weight = _param(torch.ones(num_channels))
        self.bias = _param(torch.zeros(num_channels))

    def forward(self, x):
        gamma, beta = self.weight.to(x.dtype), self.bias.to(x.dtype)
        return functional.group_norm(x, self.num_groups, gamma, beta, self.eps)


def attention_weights(q, k):
    """softmax over k of q^T k / sqrt(channels), computed in float32."""
    keys = (k / np.sqrt(k.shape[1])).to(torch.float32)
    logits = torch.einsum("ncq,nck->nqk", q.to(torch.float32), keys)
    return torch.softmax(logits, dim=2).to(q.dtype)


@persistence.persistent_class
class UNetBlock(torch.nn.Module):
    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False,
                 attention=False, num_heads=None, channels_per_head=64, dropout=0,
                 skip_scale=1, eps=1e-5, resample_filter=[1, 1], resample_proj=False,
                 adaptive_scale=True, init=None, init_zero=None, init_attn=None):
        super().__init__()
        init = {} if init is None else init
        if init_zero is None:
            init_zero = {"init_weight": 0}
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.emb_channels = emb_channels
        heads = 0
        if attention:
            heads = out_channels // channels_per_head if num_heads is None else num_heads
        self.num_heads = heads
        self.dropout = dropout
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale
        resampling = dict(up=up, down=down, resample_filter=resample_filter)
        self.norm0 = GroupNorm(num_channels=in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels=in_channels, out_channels=out_channels, kernel=3,
                            **resampling, **init)
        emb_out = 2 * out_channels if adaptive_scale else out_channels
        self.affine = Linear(in_features=emb_channels, out_features=emb_out, **init)
        self.norm1 = GroupNorm(num_channels=out_channels, eps=eps)
        self.conv1 = Conv2d(in_channels=out_channels, out_channels=out_channels, kernel=3,
                            **init_zero)
        self.skip = None
        reshaped = in_channels != out_channels
        if reshaped or up or down:
            skip_kernel = 1 if (reshaped or resample_proj) else 0
            self.skip = Conv2d(in_channels=in_channels, out_channels=out_channels,
                               kernel=skip_kernel, **resampling, **init)
        if heads:
            self.norm2 = GroupNorm(num_channels=out_channels, eps=eps)
            attn_init = init_attn if init_attn is not None else init
            self.qkv = Conv2d(in_channels=out_channels, out_channels=3 * out_channels, kernel=1,
                              **attn_init)
            self.proj = Conv2d(in_channels=out_channels, out_channels=out_channels, kernel=1,
                               **init_zero)

    def _attend(self, x):
        n, c = x.shape[0], x.shape[1]
        heads = self.qkv(self.norm2(x)).reshape(n * self.num_heads, c // self.num_heads, 3, -1)
        q, k, v = heads.unbind(2)
        mixed = torch.einsum("nqk,nck->ncq", attention_weights(q, k), v)
        return x + self.proj(mixed.reshape(x.shape))

    def forward(self, x, emb):
        shortcut = x if self.skip is None else self.skip(x)
        h = self.conv0(silu(self.norm0(x)))
        cond = self.affine(emb).unsqueeze(-1).unsqueeze(-1).to(h.dtype)
        if not self.adaptive_scale:
            h = silu(self.norm1(h.add_(cond)))
        else:
            gain, offset = cond.chunk(chunks=2, dim=1)
            normed = self.norm1(h)
            h = silu(torch.addcmul(offset, normed, gain + 1))
        h = self.conv1(functional.dropout(h, p=self.dropout, training=self.training))
        out = h.add_(shortcut) * self.skip_scale
        if self.num_heads:
            out = self._attend(out) * self.skip_scale
        return out


@persistence.persistent_class
class PositionalEmbedding(torch.nn.Module):
    def __init__(self, num_channels, max_positions=10000, endpoint=False):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions
        self.endpoint = endpoint

    def forward(self, x):
        count = self.num_channels // 2
        steps = torch.arange(0, count, dtype=torch.float32, device=x.device)
        span = count - 1 if self.endpoint else count
        rates = (1 / self.max_positions) ** (steps / span)
        angles = torch.outer(x, rates.to(x.dtype))
        return torch.cat((angles.cos(), angles.sin()), dim=1)


@persistence.persistent_class
class FourierEmbedding(torch.nn.Module):
    def __init__(self, num_channels, scale=16):
        super().__init__()
        self.register_buffer("freqs", scale * torch.randn(num_channels // 2))

    def forward(self, x):
        rates = (self.freqs * (2 * np.pi)).to(x.dtype)
        angles = torch.outer(x, rates)
        return torch.cat((angles.cos(), angles.sin()), dim=1)


def drop_labels(module, labels, batch, device):
    """Class labels zeroed per image with probability ``label_dropout`` while training."""
    if not (module.training and module.label_dropout):
        return labels
    keep = torch.rand([batch, 1], device=device) >= module.label_dropout
    return labels * keep.to(labels.dtype)


def _kind(key):
    """The part of an ``enc``/``dec`` key after the resolution, e.g. 'aux_skip' or 'block0'."""
    return key.partition("_")[2]


def _levels(img_resolution, channel_mult):
    """(level, resolution, multiplier) per level, coarsest last."""
    return [(i, img_resolution >> i, m) for i, m in enumerate(channel_mult)]


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
        cemb = channel_mult_emb * model_channels
        cnoise = channel_mult_noise * model_channels
        init = dict(init_mode="xavier_uniform")
        init_zero = dict(init, init_weight=1e-5)
        init_attn = dict(init, init_weight=np.sqrt(0.2))
        common = dict(emb_channels=cemb, num_heads=1, dropout=dropout,
                      skip_scale=np.sqrt(0.5), eps=1e-6, resample_filter=resample_filter,
                      resample_proj=True, adaptive_scale=False, init=init,
                      init_zero=init_zero, init_attn=init_attn)
        fourier = embedding_type == "fourier"
        self.map_noise = (FourierEmbedding(num_channels=cnoise) if fourier
                          else PositionalEmbedding(num_channels=cnoise, endpoint=True))
        self.map_label = (Linear(in_features=label_dim, out_features=cnoise, **init)
                          if label_dim else None)
        self.map_augment = (Linear(in_features=augment_dim, out_features=cnoise, bias=False,
                                   **init) if augment_dim else None)
        self.map_layer0 = Linear(in_features=cnoise, out_features=cemb, **init)
        self.map_layer1 = Linear(in_features=cemb, out_features=cemb, **init)

        levels = _levels(img_resolution, channel_mult)
        self.enc = torch.nn.ModuleDict()
        width = aux_width = in_channels
        for level, res, mult in levels:
            tag = f"{res}x{res}"
            if level > 0:
                self.enc[tag + "_down"] = UNetBlock(in_channels=width, out_channels=width,
                                                    down=True, **common)
                if encoder_type == "skip":
                    self.enc[tag + "_aux_down"] = Conv2d(
                        in_channels=aux_width, out_channels=aux_width, kernel=0, down=True,
                        resample_filter=resample_filter)
                    self.enc[tag + "_aux_skip"] = Conv2d(
                        in_channels=aux_width, out_channels=width, kernel=1, **init)
                elif encoder_type == "residual":
                    self.enc[tag + "_aux_residual"] = Conv2d(
                        in_channels=aux_width, out_channels=width, kernel=3, down=True,
                        resample_filter=resample_filter, fused_resample=True, **init)
                    aux_width = width
            else:
                self.enc[tag + "_conv"] = Conv2d(in_channels=width, out_channels=model_channels,
                                                 kernel=3, **init)
                width = model_channels
            with_attn = res in attn_resolutions
            for i in range(num_blocks):
                self.enc[f"{tag}_block{i}"] = UNetBlock(
                    in_channels=width, out_channels=mult * model_channels,
                    attention=with_attn, **common)
                width = mult * model_channels
        pending = [m.out_channels for k, m in self.enc.items() if not _kind(k).startswith("aux")]

        self.dec = torch.nn.ModuleDict()
        coarsest = levels[-1][0]
        for level, res, mult in levels[::-1]:
            tag = f"{res}x{res}"
            if level != coarsest:
                self.dec[tag + "_up"] = UNetBlock(in_channels=width, out_channels=width,
                                                  up=True, **common)
            else:
                self.dec[tag + "_in0"] = UNetBlock(in_channels=width, out_channels=width,
                                                   attention=True, **common)
                self.dec[tag + "_in1"] = UNetBlock(in_channels=width, out_channels=width,
                                                   **common)
            for i in range(num_blocks + 1):
                last = i == num_blocks
                self.dec[f"{tag}_block{i}"] = UNetBlock(
                    in_channels=width + pending.pop(), out_channels=mult * model_channels,
                    attention=last and res in attn_resolutions, **common)
                width = mult * model_channels
            skip_decoder = decoder_type == "skip"
            if not (skip_decoder or level == 0):
                continue
            if skip_decoder and level != coarsest:
                self.dec[tag + "_aux_up"] = Conv2d(
                    in_channels=out_channels, out_channels=out_channels, kernel=0, up=True,
                    resample_filter=resample_filter)
            self.dec[tag + "_aux_norm"] = GroupNorm(num_channels=width, eps=1e-6)
            self.dec[tag + "_aux_conv"] = Conv2d(in_channels=width, out_channels=out_channels,
                                                 kernel=3, **init_zero)

    def _embed(self, x, noise_labels, class_labels, augment_labels):
        waves = self.map_noise(noise_labels)
        emb = waves.reshape(waves.shape[0], 2, -1).flip(1).reshape(*waves.shape)  # sin first
        if self.map_label is not None:
            labels = drop_labels(self, class_labels, x.shape[0], x.device)
            emb = emb + self.map_label(labels * np.sqrt(self.map_label.in_features))
        if augment_labels is not None and self.map_augment is not None:
            emb = self.map_augment(augment_labels) + emb
        hidden = silu(self.map_layer0(emb))
        return silu(self.map_layer1(hidden))

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        emb = self._embed(x, noise_labels, class_labels, augment_labels)

        saved = []
        aux = x
        for key, module in self.enc.items():
            kind = _kind(key)
            if kind == "aux_down":
                aux = module(aux)
                continue
            if kind == "aux_skip":
                x = x + module(aux)
                saved[-1] = x
            elif kind == "aux_residual":
                x = (x + module(aux)) / np.sqrt(2)
                saved[-1] = aux = x
            else:
                x = module(x) if kind == "conv" else module(x, emb)
                saved.append(x)

        image = None
        branch = None
        for key, module in self.dec.items():
            kind = _kind(key)
            if kind == "aux_up":
                image = module(image)
            elif kind == "aux_norm":
                branch = module(x)
            elif kind == "aux_conv":
                branch = module(silu(branch))
                if image is not None:
                    branch = branch + image
                image = branch
            else:
                if module.in_channels != x.shape[1]:
                    x = torch.cat((x, saved.pop()), dim=1)
                x = module(x, emb)
        return image


@persistence.persistent_class
class DhariwalUNet(torch.nn.Module):
    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0,
                 model_channels=192, channel_mult=[1, 2, 3, 4], channel_mult_emb=4,
                 num_blocks=3, attn_resolutions=[32, 16, 8], dropout=0.10, label_dropout=0):
        super().__init__()
        self.label_dropout = label_dropout
        cemb = channel_mult_emb * model_channels
        third = np.sqrt(1 / 3)
        init = dict(init_mode="kaiming_uniform", init_weight=third, init_bias=third)
        init_zero = dict(init_mode="kaiming_uniform", init_weight=0, init_bias=0)
        common = dict(emb_channels=cemb, channels_per_head=64, dropout=dropout, init=init,
                      init_zero=init_zero)
        self.map_noise = PositionalEmbedding(num_channels=model_channels)
        self.map_augment = (Linear(in_features=augment_dim, out_features=model_channels,
                                   bias=False, **init_zero) if augment_dim else None)
        self.map_layer0 = Linear(in_features=model_channels, out_features=cemb, **init)
        self.map_layer1 = Linear(in_features=cemb, out_features=cemb, **init)
        self.map_label = None
        if label_dim:
            self.map_label = Linear(in_features=label_dim, out_features=cemb, bias=False,
                                    init_mode="kaiming_normal",
                                    init_weight=np.sqrt(label_dim))

        levels = _levels(img_resolution, channel_mult)
        self.enc = torch.nn.ModuleDict()
        width = in_channels
        for level, res, mult in levels:
            tag = f"{res}x{res}"
            target = mult * model_channels
            if level > 0:
                self.enc[tag + "_down"] = UNetBlock(in_channels=width, out_channels=width,
                                                    down=True, **common)
            else:
                self.enc[tag + "_conv"] = Conv2d(in_channels=width, out_channels=target,
                                                 kernel=3, **init)
                width = target
            for i in range(num_blocks):
                self.enc[f"{tag}_block{i}"] = UNetBlock(
                    in_channels=width, out_channels=target,
                    attention=res in attn_resolutions, **common)
                width = target
        pending = [m.out_channels for m in self.enc.values()]

        self.dec = torch.nn.ModuleDict()
        coarsest = levels[-1][0]
        for level, res, mult in levels[::-1]:
            tag = f"{res}x{res}"
            target = mult * model_channels
            if level != coarsest:
                self.dec[tag + "_up"] = UNetBlock(in_channels=width, out_channels=width,
                                                  up=True, **common)
            else:
                self.dec[tag + "_in0"] = UNetBlock(in_channels=width, out_channels=width,
                                                   attention=True, **common)
                self.dec[tag + "_in1"] = UNetBlock(in_channels=width, out_channels=width,
                                                   **common)
            for i in range(num_blocks + 1):
                self.dec[f"{tag}_block{i}"] = UNetBlock(
                    in_channels=width + pending.pop(), out_channels=target,
                    attention=res in attn_resolutions, **common)
                width = target
        self.out_norm = GroupNorm(num_channels=width)
        self.out_conv = Conv2d(in_channels=width, out_channels=out_channels, kernel=3,
                               **init_zero)

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        waves = self.map_noise(noise_labels)
        if augment_labels is not None and self.map_augment is not None:
            waves = self.map_augment(augment_labels) + waves
        emb = self.map_layer1(silu(self.map_layer0(waves)))
        if self.map_label is not None:
            emb = emb + self.map_label(drop_labels(self, class_labels, x.shape[0], x.device))
        emb = silu(emb)

        saved = []
        for key, module in self.enc.items():
            x = module(x) if _kind(key) == "conv" else module(x, emb)
            saved.append(x)
        for module in self.dec.values():
            if module.in_channels != x.shape[1]:
                x = torch.cat((x, saved.pop()), dim=1)
            x = module(x, emb)
        return self.out_conv(silu(self.out_norm(x)))


def _precond_inputs(net, x, sigma, class_labels, force_fp32):
    """x and sigma in float32, the labels (zeros when missing) and the model's dtype."""
    x = x.to(torch.float32)
    sigma = sigma.reshape(-1, 1, 1, 1).to(torch.float32)
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


def _unit_input_scale(sigma):
    """1 / sqrt(sigma^2 + 1), the VP and iDDPM c_in."""
    return 1 / (1 + sigma ** 2).sqrt()


def _build(model_type, img_resolution, img_channels, out_channels, label_dim, model_kwargs):
    cls = globals()[model_type]
    return cls(img_resolution=img_resolution, in_channels=img_channels,
               out_channels=out_channels, label_dim=label_dim, **model_kwargs)


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
        self.sigma_min, self.sigma_max = (float(self.sigma(t)) for t in (epsilon_t, 1))
        self.model = _build(model_type, img_resolution, img_channels, img_channels, label_dim,
                            model_kwargs)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x, sigma, class_labels, dtype = _precond_inputs(self, x, sigma, class_labels,
                                                        force_fp32)
        t = self.sigma_inv(sigma)
        F_x = _run_model(self, x, _unit_input_scale(sigma), (self.M - 1) * t, class_labels,
                         dtype, model_kwargs)
        return x - sigma * F_x.to(torch.float32)

    def sigma(self, t):
        t = torch.as_tensor(t)
        exponent = 0.5 * self.beta_d * (t ** 2) + self.beta_min * t
        return (exponent.exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        disc = self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()
        return (disc.sqrt() - self.beta_min) / self.beta_d

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
        self.model = _build(model_type, img_resolution, img_channels, img_channels, label_dim,
                            model_kwargs)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x, sigma, class_labels, dtype = _precond_inputs(self, x, sigma, class_labels,
                                                        force_fp32)
        F_x = _run_model(self, x, 1, torch.log(sigma * 0.5), class_labels, dtype,
                         model_kwargs)
        return x + sigma * F_x.to(torch.float32)

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
        self.model = _build(model_type, img_resolution, img_channels, 2 * img_channels,
                            label_dim, model_kwargs)
        levels = torch.zeros(M + 1)
        for j in reversed(range(1, M + 1)):
            step = self.alpha_bar(j - 1) / self.alpha_bar(j)
            levels[j - 1] = ((levels[j] ** 2 + 1) / step.clip(min=C_1) - 1).sqrt()
        self.register_buffer("u", levels)
        self.sigma_min = float(levels[-2])
        self.sigma_max = float(levels[0])

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x, sigma, class_labels, dtype = _precond_inputs(self, x, sigma, class_labels,
                                                        force_fp32)
        index = self.round_sigma(sigma, return_index=True).to(torch.float32)
        F_x = _run_model(self, x, _unit_input_scale(sigma), (self.M - 1) - index,
                         class_labels, dtype, model_kwargs)
        return x - sigma * F_x[:, :self.img_channels].to(torch.float32)

    def alpha_bar(self, j):
        angle = 0.5 * np.pi * torch.as_tensor(j) / self.M / (self.C_2 + 1)
        return angle.sin() ** 2

    def round_sigma(self, sigma, return_index=False):
        sigma = torch.as_tensor(sigma)
        query = sigma.to(self.u.device).to(torch.float32).reshape(1, -1, 1)
        nearest = torch.cdist(query, self.u.reshape(1, -1, 1)).argmin(2)
        if not return_index:
            nearest = self.u[nearest.flatten()].to(sigma.dtype)
        return nearest.reshape(sigma.shape).to(sigma.device)


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
        self.model = _build(model_type, img_resolution, img_channels, img_channels, label_dim,
                            model_kwargs)

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
