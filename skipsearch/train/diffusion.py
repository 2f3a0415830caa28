"""Train the digits UNet with EDM's loss (Karras et al. 2022, Sec. 5, Table 1)."""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn.functional as F

from ..data.digits import NUM_CLASSES, digits_tensors
from ..models.denoiser import EDMPrecond
from ..models.digits_unet import DigitsUNet, DigitsUNetConfig
from .ema import EMA

log = logging.getLogger(__name__)


def edm_loss(denoiser: EDMPrecond, y: torch.Tensor, labels: torch.Tensor,
             P_mean: float, P_std: float, generator: torch.Generator) -> torch.Tensor:
    """E[lambda(sigma) |D(y + n; sigma) - y|^2] with ln(sigma) ~ N(P_mean, P_std^2)."""
    rnd = torch.randn(y.shape[0], 1, 1, 1, generator=generator)
    sigma = (rnd * P_std + P_mean).exp()
    sd = denoiser.sigma_data
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    n = torch.randn(y.shape, generator=generator) * sigma
    D_yn = denoiser(y + n, sigma.flatten(), labels)
    return (weight * (D_yn - y) ** 2).mean()


def warmup_cosine(step: int, total: int, warmup_fraction: float = 0.05) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    warmup = max(1, int(total * warmup_fraction))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_diffusion(cfg, seed: int) -> tuple[EDMPrecond, list[str]]:
    """Train on all digits; return the EMA denoiser and the log lines."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = digits_tensors()
    onehot = F.one_hot(labels, NUM_CLASSES).float()
    config = DigitsUNetConfig(model_channels=cfg.model_channels,
                              channel_mult=tuple(cfg.channel_mult),
                              blocks_per_level=cfg.blocks_per_level)
    denoiser = EDMPrecond(DigitsUNet(config), sigma_data=cfg.sigma_data)
    ema = EMA(denoiser, cfg.ema_decay)
    opt = torch.optim.Adam(denoiser.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg.steps))
    lines, start, running = [], time.perf_counter(), 0.0
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=gen)
        loss = edm_loss(denoiser, images[idx], onehot[idx], cfg.P_mean, cfg.P_std, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update(denoiser)
        running += loss.item()
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            line = (f"step {step:6d}  loss {running / n:.4f}  lr {sched.get_last_lr()[0]:.2e}"
                    f"  elapsed {time.perf_counter() - start:7.1f}s")
            log.info(line)
            lines.append(line)
            running = 0.0
    return ema.shadow, lines
