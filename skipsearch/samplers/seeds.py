"""Per-image seeds: image k is drawn from its own generator, so batches never matter."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def latents_from_seeds(seeds: Sequence[int], shape: tuple[int, ...],
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard-normal latents, one generator per seed, stacked to (len(seeds), *shape)."""
    out = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s)))
           for s in seeds]
    return torch.stack(out).to(device)


def labels_from_seeds(seeds: Sequence[int], label_dim: int,
                      device: torch.device | str = "cpu") -> torch.Tensor | None:
    """One-hot class labels cycling with the seed (seed % label_dim); None if unconditional."""
    if label_dim == 0:
        return None
    idx = torch.as_tensor([int(s) % label_dim for s in seeds], dtype=torch.long)
    return torch.nn.functional.one_hot(idx, label_dim).float().to(device)
