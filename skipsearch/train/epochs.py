"""The epoch loop the digits feature networks share: Adam over seeded shuffles of a split."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)


def train_epochs(model: nn.Module, cfg, train_idx: torch.Tensor, gen: torch.Generator,
                 loss_of: Callable[[torch.Tensor], torch.Tensor],
                 held_out: Callable[[], float], measure: str) -> list[str]:
    """Train ``model`` for ``cfg.epochs`` epochs of ``cfg.batch_size`` with Adam (``cfg.lr``).

    ``loss_of(batch)`` is the loss of a batch of indices; ``held_out()`` the held-out
    ``measure`` logged after each epoch. Returns the log lines.
    """
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    lines = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for batch in perm.split(cfg.batch_size):
            loss = loss_of(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        line = f"epoch {epoch:3d}  loss {loss.item():.4f}  held-out {measure} {held_out():.4f}"
        log.info(line)
        lines.append(line)
    return lines
