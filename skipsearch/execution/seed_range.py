"""A range of consecutive seeds: the images a score is measured on (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# One past the largest seed: torch's generators take 64-bit seeds, and a study stores them as
# signed 64-bit integers, so every seed of a range must stay below 2**63.
SEED_LIMIT = 2**63


@dataclass(frozen=True)
class SeedRange:
    """Seeds ``start`` .. ``start + count - 1``; image i of a run is drawn from seed start + i."""

    start: int
    count: int

    def __post_init__(self) -> None:
        for name in ("start", "count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"SeedRange.{name} must be an int, got {value!r}")
        if self.start < 0 or self.count < 1 or self.stop > SEED_LIMIT:
            raise ValueError(f"a seed range needs start >= 0, count >= 1 and start + count <= "
                             f"2**63, got start={self.start}, count={self.count}")

    @property
    def stop(self) -> int:
        """One past the last seed."""
        return self.start + self.count

    @property
    def seeds(self) -> range:
        """The seeds, in order."""
        return range(self.start, self.stop)

    def with_count(self, count: int) -> SeedRange:
        """The ``count`` seeds from the same start (fewer or more than this range)."""
        return SeedRange(self.start, count)

    def overlaps(self, other: SeedRange) -> bool:
        """Whether the two ranges share a seed."""
        return self.start < other.stop and other.start < self.stop

    def to_dict(self) -> dict[str, int]:
        """``{"start": .., "stop": ..}``, as exports record a score's seeds."""
        return {"start": self.start, "stop": self.stop}

    @classmethod
    def from_dict(cls, data: Mapping) -> SeedRange:
        """Inverse of ``to_dict``."""
        start, stop = int(data["start"]), int(data["stop"])
        return cls(start, stop - start)
