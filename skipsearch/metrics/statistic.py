"""The statistic seam: a metric's number from generated features, with a block left out.

A scoring pass feeds the features of generated images, in seed order, to an ``Accumulator``.
The seeds are cut into ``blocks`` consecutive blocks (1 when no interval is wanted);
``value(leave_out=b)`` is the statistic without block ``b``, from which the paired jackknife
(``metrics.blocks.paired_delta``) gives the interval of a change. A ``Statistic`` holds the
reference side (statistics or features of real images) and makes accumulators.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch


def block_ids(start: int, count: int, blocks: int, total: int) -> torch.Tensor:
    """The block of each of ``count`` images from position ``start`` among ``total``.

    Images past ``total`` (a pass longer than announced) stay in the last block.
    """
    return ((torch.arange(start, start + count) * blocks) // max(total, 1)).clamp(max=blocks - 1)


class Accumulator(ABC):
    """The generated side of one scoring pass, kept per block of consecutive seeds."""

    def __init__(self, blocks: int, total: int) -> None:
        if not 1 <= blocks <= max(total, 1):
            raise ValueError(f"need 1 <= blocks <= images, got {blocks} blocks of {total}")
        self.blocks, self.total, self.seen = blocks, total, 0
        self.count = torch.zeros(blocks, dtype=torch.int64)
        self.only: frozenset[int] | None = None  # the blocks a value sees (all when None)

    def add(self, features: torch.Tensor, context: Sequence | None = None) -> None:
        """Add the features of the next images in seed order (``context``: their prompts)."""
        ids = block_ids(self.seen, features.shape[0], self.blocks, self.total)
        for block in ids.unique().tolist():
            mask = ids == block
            part = features[mask.to(features.device)]
            self.add_block(block, part, None if context is None
                           else [c for c, m in zip(context, mask.tolist(), strict=True) if m])
            self.count[block] += part.shape[0]
        self.seen += features.shape[0]

    @abstractmethod
    def add_block(self, block: int, features: torch.Tensor, context: Sequence | None) -> None:
        """Add features (and their context) of images that all fall in ``block``."""

    def kept(self, leave_out: int | None) -> list[int]:
        """The blocks a value uses: all (or those of ``within``), but ``leave_out``."""
        return [b for b in range(self.blocks)
                if b != leave_out and (self.only is None or b in self.only)]

    @contextmanager
    def within(self, blocks: Iterable[int]) -> Iterator[Accumulator]:
        """Values computed inside see only ``blocks`` (a prefix of seeds, or one block)."""
        old, self.only = self.only, frozenset(blocks)
        try:
            yield self
        finally:
            self.only = old

    @abstractmethod
    def value(self, leave_out: int | None = None) -> float:
        """The statistic of the images added, without block ``leave_out`` if given."""

    def parts(self, leave_out: int | None = None) -> dict[str, float]:
        """Named values besides the statistic (precision and recall); none by default."""
        return {}

    def state(self) -> dict[str, torch.Tensor] | None:
        """What the accumulator holds, to take up later with ``load``; None: not kept."""
        return None

    def load(self, state: dict[str, torch.Tensor], seen: int) -> None:
        """Hold ``state`` (from ``state``) as if its ``seen`` images had been added."""
        raise NotImplementedError(f"{type(self).__name__} keeps no state")


class FeatureBlocks(Accumulator):
    """An accumulator that keeps every generated feature (float64), per block."""

    def __init__(self, blocks: int, total: int) -> None:
        super().__init__(blocks, total)
        self.features: list[list[torch.Tensor]] = [[] for _ in range(blocks)]

    def add_block(self, block: int, features: torch.Tensor, context: Sequence | None) -> None:
        """Keep the block's features."""
        self.features[block].append(features.detach().to(torch.float64))

    def stacked(self, leave_out: int | None = None) -> torch.Tensor:
        """The kept features of every block but ``leave_out``, in seed order, (N, D)."""
        parts = [f for b in self.kept(leave_out) for f in self.features[b]]
        if not parts:
            raise ValueError("no features were added")
        return torch.cat(parts)


class Statistic(ABC):
    """How a metric turns generated features and its reference into one number."""

    #: what the reference must provide: "sums" (mean and covariance), "features", or "none"
    needs = "sums"
    #: True for precision, recall and CLIP score; False for distances
    higher_is_better = False

    @abstractmethod
    def accumulator(self, blocks: int = 1, total: int = 0) -> Accumulator:
        """A fresh accumulator for ``total`` images in ``blocks`` blocks."""

    def held(self) -> str:
        """What the statistic holds of the reference, in words (``refstats`` prints it)."""
        reference = getattr(self, "reference", None)
        if reference is None:
            return "no reference"
        if hasattr(reference, "count"):
            return f"{reference.count} images, {reference.total.numel()}-d feature sums"
        return f"{reference.shape[0]} images, {reference.shape[1]}-d features"
