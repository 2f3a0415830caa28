"""Per-image seeds: image k is drawn from its own generator, so batches never matter."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class PerImageNoise:
    """One CPU generator per seed: the latents first, then the sampler's noise, image by image.

    Like EDM's StackedRandomGenerator: the noise continues each seed's stream after its
    latents, so an image's draws depend on its seed only, never on the batch around it.
    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def latents(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        """Standard-normal latents of ``shape`` per seed, stacked to (len(seeds), *shape)."""
        out = [torch.randn(shape, generator=g) for g in self.generators]
        return torch.stack(out).to(device)

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        """Standard-normal noise shaped, typed and placed like ``like`` (one row per seed)."""
        if like.shape[0] != len(self.generators):
            raise ValueError(f"noise for {len(self.generators)} seeds, "
                             f"asked for a batch of {like.shape[0]}")
        out = [torch.randn(like.shape[1:], generator=g, dtype=like.dtype)
               for g in self.generators]
        return torch.stack(out).to(like.device)


def latents_from_seeds(seeds: Sequence[int], shape: tuple[int, ...],
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard-normal latents, one generator per seed, stacked to (len(seeds), *shape)."""
    return PerImageNoise(seeds).latents(shape, device)


def labels_from_seeds(seeds: Sequence[int], label_dim: int,
                      device: torch.device | str = "cpu") -> torch.Tensor | None:
    """One-hot class labels cycling with the seed (seed % label_dim); None if unconditional."""
    if label_dim == 0:
        return None
    idx = torch.as_tensor([int(s) % label_dim for s in seeds], dtype=torch.long)
    return torch.nn.functional.one_hot(idx, label_dim).float().to(device)
