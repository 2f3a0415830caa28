"""Every metric of a run scored on the same generated images, each network run once a batch.

A ``Scorer`` holds the built metrics (feature network, statistic with its reference). A pass
(``reset`` .. ``update`` .. ``compute``) scores the metrics it names: the search scores its
objectives, a confirmation every metric. Images are streamed, never written; the features
stay in the statistics' accumulators, per block of seeds when an interval is wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .fid_infinity import FIDInfinity, fid_infinity
from .registry import MetricDef
from .statistic import Accumulator, Statistic


@dataclass
class Metric:
    """A built metric: its definition, feature network and statistic (with the reference)."""

    definition: MetricDef
    network: nn.Module
    statistic: Statistic
    reference: str = ""

    @property
    def name(self) -> str:
        """The registered name."""
        return self.definition.name

    def provenance(self) -> dict:
        """What this metric's numbers depend on: network (with hash) and reference."""
        return {"metric": self.name, "feature_extractor": self.network.name,
                "feature_sha256": self.network.sha256, "reference": self.reference}


def _checked_checkpoints(checkpoints: Sequence[int]) -> tuple[int, ...]:
    """Sorted unique image counts; a score needs at least 2 images (ValueError otherwise)."""
    counts = sorted({int(k) for k in checkpoints})
    if counts and counts[0] < 2:
        raise ValueError(f"checkpoints must be image counts >= 2, got {list(checkpoints)}")
    return tuple(counts)


@dataclass
class PassState:
    """A pass's state, set aside while another pass runs (racing schedules block by block)."""

    active: tuple[str, ...]
    accumulators: dict[str, Accumulator]
    count: int
    checkpoints: tuple[int, ...]
    curve: list[tuple[int, float]]
    finite: torch.Tensor


class Scorer:
    """The metrics of a run; the first is the primary one (the search metric)."""

    def __init__(self, metrics: Sequence[Metric], device: torch.device | str = "cpu") -> None:
        if not metrics:
            raise ValueError("a scorer needs at least one metric")
        self.metrics = {m.name: m for m in metrics}
        self.primary = metrics[0].name
        self.device = device
        self.active: tuple[str, ...] = (self.primary,)
        self.accumulators: dict[str, Accumulator] = {}
        self._count = 0
        self._checkpoints: tuple[int, ...] = ()
        self._curve: list[tuple[int, float]] = []
        self._finite = torch.ones((), dtype=torch.bool, device=device)
        self.reset()

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric this scorer holds, the primary first."""
        return tuple(self.metrics)

    @property
    def count(self) -> int:
        """Generated images added since the last reset."""
        return self._count

    @property
    def curve(self) -> list[tuple[int, float]]:
        """(count, primary score) at each checkpoint reached since the last reset."""
        return list(self._curve)

    def provenance(self) -> dict:
        """How the primary score is measured (a study records it and checks it on resume)."""
        return self.metrics[self.primary].provenance()

    def reset(self, checkpoints: Sequence[int] = (), blocks: int = 0, total: int = 0,
              names: Sequence[str] | None = None) -> None:
        """Start a pass over ``total`` images scoring ``names`` (the primary alone if None).

        With ``blocks`` >= 2 each accumulator keeps its state per block of consecutive seeds,
        for the paired interval of a change (``metrics.blocks``). The primary score is also
        recorded at each of ``checkpoints`` image counts (FID-infinity).
        """
        names = tuple(names) if names is not None else (self.primary,)
        unknown = [n for n in names if n not in self.metrics]
        if unknown:
            raise KeyError(f"no metric {unknown[0]!r} in this scorer ({', '.join(self.names)})")
        self.active = tuple(dict.fromkeys([self.primary, *names]))
        k = blocks if blocks >= 2 else 1
        self.accumulators = {n: self.metrics[n].statistic.accumulator(k, max(total, k))
                             for n in self.active}
        self._count = 0
        self._checkpoints = _checked_checkpoints(checkpoints)
        self._curve = []
        self._finite = torch.ones((), dtype=torch.bool, device=self.device)

    def snapshot(self) -> PassState:
        """The current pass, to be taken up again with ``restore``."""
        return PassState(self.active, dict(self.accumulators), self._count, self._checkpoints,
                         list(self._curve), self._finite.clone())

    def restore(self, state: PassState) -> None:
        """Go on with a pass set aside by ``snapshot``."""
        self.active, self.accumulators = state.active, dict(state.accumulators)
        self._count, self._checkpoints = state.count, state.checkpoints
        self._curve, self._finite = list(state.curve), state.finite.clone()

    @property
    def finite(self) -> bool:
        """Whether every image and feature of the pass so far was finite."""
        return bool(self._finite)

    def update(self, images: torch.Tensor, prompts: Sequence[str] | None = None) -> None:
        """Add a batch of generated images in [-1, 1], split at checkpoint counts."""
        end = self._count + images.shape[0]
        for k in self._checkpoints:
            if self._count < k <= end:
                cut = k - self._count
                head, images = images[:cut], images[cut:]
                self._add(head, prompts[:cut] if prompts is not None else None)
                prompts = prompts[cut:] if prompts is not None else None
                self._curve.append((k, self.compute()))
        if images.shape[0]:
            self._add(images, prompts)

    def needs_prompts(self) -> bool:
        """Whether a metric of this pass scores images against their prompts."""
        return any(getattr(self.metrics[n].network, "needs_prompts", False)
                   for n in self.active)

    def _add(self, images: torch.Tensor, prompts: Sequence[str] | None) -> None:
        """Run each network of the pass once on the images; feed its metrics.

        Non-finite images make every score of the pass NaN: networks that quantise to 8 bits
        (InceptionV3, DINOv2, CLIP) would read NaN as black and give a finite score.
        """
        self._finite &= torch.isfinite(images).all()
        by_network: dict[int, list[str]] = {}
        for name in self.active:
            by_network.setdefault(id(self.metrics[name].network), []).append(name)
        for names in by_network.values():
            network = self.metrics[names[0]].network
            if getattr(network, "needs_prompts", False):
                if prompts is None:
                    raise ValueError(f"{names[0]} scores images against their prompts; "
                                     "the model gave none")
                features = network(images, prompts)
            else:
                features = network(images)
            self._finite &= torch.isfinite(features).all()
            for name in names:
                self.accumulators[name].add(features, prompts)
        self._count += images.shape[0]

    def compute(self, name: str | None = None, leave_out: int | None = None) -> float:
        """The score of ``name`` (the primary) so far; NaN if a feature was not finite."""
        if not bool(self._finite):
            return float("nan")
        return float(self.accumulators[name or self.primary].value(leave_out))

    def values(self) -> dict[str, float]:
        """Every metric of the pass, by name."""
        return {n: self.compute(n) for n in self.active}

    def parts(self) -> dict[str, dict[str, float]]:
        """Named values besides each metric's score (precision and recall), by metric."""
        if not bool(self._finite):
            return {}
        return {n: p for n in self.active if (p := self.accumulators[n].parts())}

    def higher_is_better(self, name: str | None = None) -> bool:
        """Whether a larger ``name`` (the primary) is better."""
        return self.metrics[name or self.primary].definition.higher_is_better

    def compute_infinity(self) -> FIDInfinity:
        """FID-infinity fitted to the checkpoint curve plus the score at the current count."""
        points = dict(self._curve)
        if self._count not in points:
            points[self._count] = self.compute()
        if len(points) < 2:
            raise ValueError(f"FID-infinity needs FIDs at 2 or more counts, got {sorted(points)}; "
                             "call reset(checkpoints=infinity_counts(n)) before the updates")
        counts = sorted(points)
        return fid_infinity(counts, [points[n] for n in counts])

