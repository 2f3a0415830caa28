"""Per-image seeds: image k is drawn from its own generator, so batches never matter."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def on_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``; to CUDA through pinned memory, so the host does not wait."""
    if torch.device(device).type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class PerImageNoise:
    """One generator per seed: the latents first, then the sampler's noise, image by image.

    Like EDM's StackedRandomGenerator: the noise continues each seed's stream after its
    latents, so an image's draws depend on its seed only, never on the batch around it. The
    generators live on ``device`` (as EDM's do), so CUDA draws never pass through the host;
    a seed therefore gives other numbers on CUDA than on the CPU.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        where = self.device if self.device.type == "cuda" else torch.device("cpu")
        self.generators = [torch.Generator(where).manual_seed(int(s)) for s in seeds]
        self.where = where

    def _draw(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """One standard-normal draw of ``shape`` per seed, stacked, on the generators' device."""
        return torch.stack([torch.randn(shape, generator=g, dtype=dtype, device=self.where)
                            for g in self.generators])

    def latents(self, shape: tuple[int, ...], device: torch.device | str | None = None
                ) -> torch.Tensor:
        """Standard-normal latents of ``shape`` per seed, stacked to (len(seeds), *shape)."""
        return self._draw(shape, torch.float32).to(device or self.device)

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        """Standard-normal noise shaped, typed and placed like ``like`` (one row per seed)."""
        if like.shape[0] != len(self.generators):
            raise ValueError(f"noise for {len(self.generators)} seeds, "
                             f"asked for a batch of {like.shape[0]}")
        return self._draw(tuple(like.shape[1:]), like.dtype).to(like.device)


def latents_from_seeds(seeds: Sequence[int], shape: tuple[int, ...],
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard-normal latents, one generator per seed, stacked to (len(seeds), *shape)."""
    return PerImageNoise(seeds, device).latents(shape)


def labels_from_seeds(seeds: Sequence[int], label_dim: int,
                      device: torch.device | str = "cpu") -> torch.Tensor | None:
    """One-hot class labels cycling with the seed (seed % label_dim); None if unconditional."""
    if label_dim == 0:
        return None
    idx = torch.as_tensor([int(s) % label_dim for s in seeds], dtype=torch.long)
    return on_device(torch.nn.functional.one_hot(idx, label_dim).float(), device)
